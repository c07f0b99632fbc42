#ifndef _GNU_SOURCE
#define _GNU_SOURCE  // RTLD_DEFAULT, for CPNG_zlib_version
#endif
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <png.h>
#include <zlib.h>
#include "CPNG.h"

typedef struct {
  char message[CPNG_MESSAGE_MAX];
  char warning[CPNG_MESSAGE_MAX];  // the encoder's first warning, which may explain an error
} cpng_error;

typedef struct {
  const unsigned char *data;
  size_t size;
  size_t offset;
} cpng_reader;

static void cpng_error_fn(png_structp png, png_const_charp text) {
  cpng_error *err = (cpng_error *)png_get_error_ptr(png);
  if (err->warning[0]) {  // "Invalid IHDR data: Image width is zero in IHDR"
    snprintf(err->message, sizeof err->message, "%s: %s", text, err->warning);
  } else {
    snprintf(err->message, sizeof err->message, "%s", text);
  }
  png_longjmp(png, 1);
}

static void cpng_warning_fn(png_structp png, png_const_charp text) {
  (void)png;
  (void)text;  // warnings (e.g. unknown chunks) do not fail the operation
}

// libpng explains some errors only in warnings before them (png_check_IHDR warns
// "Image width is zero in IHDR", then fails with "Invalid IHDR data"): keep the first.
static void cpng_encoder_warning_fn(png_structp png, png_const_charp text) {
  cpng_error *err = (cpng_error *)png_get_error_ptr(png);
  if (!err->warning[0]) snprintf(err->warning, sizeof err->warning, "%s", text);
}

static void cpng_flush_fn(png_structp png) { (void)png; }

static void cpng_read_fn(png_structp png, png_bytep bytes, png_size_t length) {
  cpng_reader *reader = (cpng_reader *)png_get_io_ptr(png);
  if (reader->size - reader->offset < length) png_error(png, "truncated PNG data");
  memcpy(bytes, reader->data + reader->offset, length);
  reader->offset += length;
}

static void cpng_copy_message(const char *source, char *message, size_t message_len) {
  if (message && message_len > 0) snprintf(message, message_len, "%s", source);
}

// ---- Incremental encoder ----------------------------------------------------------

enum { CPNG_WRITING = 0, CPNG_FAILED = 1, CPNG_FINISHED = 2 };

struct CPNG_Encoder {
  cpng_error err;  // first member: libpng's error pointer is the encoder
  png_structp png;
  png_infop info;
  int state;
  int height;
  int rows_written;
  unsigned char *buffer;  // the output so far; ours until finish hands it over
  size_t size;
  size_t capacity;
};

// Frees libpng's state and the output; only the message stays.
static void cpng_encoder_abandon(CPNG_Encoder *encoder) {
  if (encoder->png) png_destroy_write_struct(&encoder->png, &encoder->info);
  encoder->png = NULL;
  encoder->info = NULL;
  free(encoder->buffer);
  encoder->buffer = NULL;
  encoder->state = CPNG_FAILED;
}

static void cpng_encoder_fail(CPNG_Encoder *encoder, const char *message) {
  snprintf(encoder->err.message, sizeof encoder->err.message, "%s", message);
  cpng_encoder_abandon(encoder);
}

static void cpng_write_fn(png_structp png, png_bytep bytes, png_size_t length) {
  CPNG_Encoder *encoder = (CPNG_Encoder *)png_get_io_ptr(png);
  if (length > encoder->capacity - encoder->size) {
    size_t capacity = encoder->capacity ? encoder->capacity : 65536;
    while (capacity - encoder->size < length) capacity *= 2;
    unsigned char *grown = realloc(encoder->buffer, capacity);
    if (!grown) png_error(png, "out of memory for the PNG output buffer");
    encoder->buffer = grown;
    encoder->capacity = capacity;
  }
  memcpy(encoder->buffer + encoder->size, bytes, length);
  encoder->size += length;
}

CPNG_Encoder *CPNG_encoder_begin(CPNG_EncodeOptions options, int width, int height) {
  CPNG_Encoder *encoder = calloc(1, sizeof *encoder);
  if (!encoder) return NULL;
  encoder->height = height;
  if (options.bit_depth != 8 && options.bit_depth != 16) {
    cpng_encoder_fail(encoder, "the PNG encoder writes bit depth 8 or 16 only");
    return encoder;
  }
  encoder->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &encoder->err, cpng_error_fn, cpng_encoder_warning_fn);
  if (!encoder->png) {
    cpng_encoder_fail(encoder, "cannot create PNG writer");
    return encoder;
  }
  encoder->info = png_create_info_struct(encoder->png);
  if (!encoder->info) {
    cpng_encoder_fail(encoder, "cannot create PNG info");
    return encoder;
  }
  if (setjmp(png_jmpbuf(encoder->png))) {
    cpng_encoder_abandon(encoder);
    return encoder;
  }
  // Room for the raw samples up front; untouched pages are never resident.
  if (options.output_capacity > 0) {
    encoder->capacity = options.output_capacity;
    encoder->buffer = malloc(encoder->capacity);
    if (!encoder->buffer) encoder->capacity = 0;
  } else if (width > 0 && height > 0) {
    encoder->capacity = (size_t)width * (size_t)height * (size_t)(options.bit_depth / 8) + 65536;
    encoder->buffer = malloc(encoder->capacity);
    if (!encoder->buffer) encoder->capacity = 0;  // grown on first write instead
  }
  png_set_write_fn(encoder->png, encoder, cpng_write_fn, cpng_flush_fn);
  png_set_compression_level(encoder->png, options.compression_level);
  png_set_compression_strategy(encoder->png, options.strategy);
  png_set_filter(encoder->png, PNG_FILTER_TYPE_BASE, options.filters ? options.filters : PNG_FILTER_NONE);
  // Negative sizes become huge unsigned ones, which libpng refuses with its message.
  png_set_IHDR(encoder->png, encoder->info, (png_uint_32)width, (png_uint_32)height, options.bit_depth,
               PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_BASE, PNG_FILTER_TYPE_BASE);
  png_write_info(encoder->png, encoder->info);
  if (options.bit_depth == 16) {
    const uint16_t probe = 1;
    if (*(const unsigned char *)&probe == 1) png_set_swap(encoder->png);  // PNG is big-endian
  }
  return encoder;
}

// Every call but begin starts the same way: fail fast once failed, and refuse
// calls after finish.
static int cpng_encoder_usable(CPNG_Encoder *encoder) {
  if (encoder->state == CPNG_FINISHED) cpng_encoder_fail(encoder, "the PNG encoder has already finished");
  return encoder->state == CPNG_WRITING;
}

int CPNG_encoder_write_rows(CPNG_Encoder *encoder, const void *rows, size_t stride, int count) {
  if (!cpng_encoder_usable(encoder)) return -1;
  if (count < 0 || count > encoder->height - encoder->rows_written) {
    // libpng would start a second image stream after the last row: refuse instead.
    char message[CPNG_MESSAGE_MAX];
    snprintf(message, sizeof message, "%d rows written after %d of a %d-row image",
             count, encoder->rows_written, encoder->height);
    cpng_encoder_fail(encoder, message);
    return -1;
  }
  if (setjmp(png_jmpbuf(encoder->png))) {
    cpng_encoder_abandon(encoder);
    return -1;
  }
  for (int i = 0; i < count; i++) {
    // libpng copies the row before transforming (swapping) it: `rows` is only read.
    png_write_row(encoder->png, (png_const_bytep)rows + (size_t)i * stride);
    encoder->rows_written++;
  }
  return 0;
}

int CPNG_encoder_drain(CPNG_Encoder *encoder, const unsigned char **out, size_t *out_size) {
  *out = NULL;
  *out_size = 0;
  if (encoder->state != CPNG_WRITING) return -1;
  *out = encoder->buffer;
  *out_size = encoder->size;
  encoder->size = 0;
  return 0;
}

int CPNG_encoder_finish(CPNG_Encoder *encoder, unsigned char **out, size_t *out_size) {
  *out = NULL;
  *out_size = 0;
  if (!cpng_encoder_usable(encoder)) return -1;
  if (encoder->rows_written != encoder->height) {
    char message[CPNG_MESSAGE_MAX];
    snprintf(message, sizeof message, "only %d rows written of a %d-row image", encoder->rows_written, encoder->height);
    cpng_encoder_fail(encoder, message);
    return -1;
  }
  if (setjmp(png_jmpbuf(encoder->png))) {
    cpng_encoder_abandon(encoder);
    return -1;
  }
  png_write_end(encoder->png, encoder->info);
  png_destroy_write_struct(&encoder->png, &encoder->info);
  encoder->png = NULL;
  encoder->info = NULL;
  *out = encoder->buffer;
  *out_size = encoder->size;
  encoder->buffer = NULL;
  encoder->state = CPNG_FINISHED;
  return 0;
}

int CPNG_encoder_failed(const CPNG_Encoder *encoder) { return encoder->state == CPNG_FAILED; }

const char *CPNG_encoder_message(const CPNG_Encoder *encoder) { return encoder->err.message; }

void CPNG_encoder_destroy(CPNG_Encoder *encoder) {
  if (!encoder) return;
  if (encoder->png) png_destroy_write_struct(&encoder->png, &encoder->info);
  free(encoder->buffer);
  free(encoder);
}

// ---- Decoder -----------------------------------------------------------------------

int CPNG_decode(const unsigned char *data, size_t size, int *width, int *height,
                int *bit_depth, int *channels, unsigned char **pixels, size_t *pixels_size,
                char *message, size_t message_len) {
  cpng_error err;
  cpng_reader reader = { data, size, 0 };
  png_structp png = NULL;
  png_infop info = NULL;
  unsigned char *volatile buffer = NULL;
  png_bytep *volatile rows = NULL;
  memset(&err, 0, sizeof err);
  *pixels = NULL;
  *pixels_size = 0;
  if (size < 8 || png_sig_cmp((png_const_bytep)data, 0, 8) != 0) {
    cpng_copy_message("not a PNG file (bad signature)", message, message_len);
    return -1;
  }
  png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, cpng_error_fn, cpng_warning_fn);
  if (!png) { cpng_copy_message("cannot create PNG reader", message, message_len); return -1; }
  info = png_create_info_struct(png);
  if (!info) {
    png_destroy_read_struct(&png, NULL, NULL);
    cpng_copy_message("cannot create PNG info", message, message_len);
    return -1;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, NULL);
    free(buffer);
    free(rows);
    cpng_copy_message(err.message, message, message_len);
    return -1;
  }
  png_set_read_fn(png, &reader, cpng_read_fn);
  png_read_info(png, info);
  int depth = png_get_bit_depth(png, info);
  if (depth == 16) {
    const uint16_t probe = 1;
    if (*(const unsigned char *)&probe == 1) png_set_swap(png);  // to native endian
  }
  if (depth < 8) png_set_packing(png);
  if (png_get_interlace_type(png, info) != PNG_INTERLACE_NONE) png_set_interlace_handling(png);
  png_read_update_info(png, info);
  png_uint_32 w = png_get_image_width(png, info);
  png_uint_32 h = png_get_image_height(png, info);
  size_t stride = png_get_rowbytes(png, info);
  buffer = malloc(stride * h);
  if (!buffer) png_error(png, "out of memory");
  rows = malloc(sizeof(png_bytep) * h);
  if (!rows) png_error(png, "out of memory");
  for (png_uint_32 y = 0; y < h; y++) rows[y] = buffer + (size_t)y * stride;
  png_read_image(png, rows);
  free(rows);
  rows = NULL;
  png_read_end(png, NULL);
  *width = (int)w;
  *height = (int)h;
  *bit_depth = png_get_bit_depth(png, info);
  *channels = png_get_channels(png, info);
  png_destroy_read_struct(&png, &info, NULL);
  *pixels = buffer;
  *pixels_size = stride * h;
  return 0;
}

void CPNG_free(void *pointer) { free(pointer); }

int CPNG_filter_none(void) { return PNG_FILTER_NONE; }
int CPNG_filter_sub(void) { return PNG_FILTER_SUB; }
int CPNG_filter_up(void) { return PNG_FILTER_UP; }
int CPNG_filter_avg(void) { return PNG_FILTER_AVG; }
int CPNG_filter_paeth(void) { return PNG_FILTER_PAETH; }
int CPNG_filter_all(void) { return PNG_ALL_FILTERS; }

const char *CPNG_library_version(void) { return png_get_libpng_ver(NULL); }

const char *CPNG_zlib_version(void) {
  const char *(*version)(void) = NULL;
  *(void **)(&version) = dlsym(RTLD_DEFAULT, "zlibVersion");
  return version ? version() : ZLIB_VERSION;
}
