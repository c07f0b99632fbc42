#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <png.h>
#include <zlib.h>
#include "CPNG.h"

typedef struct {
  char message[CPNG_MESSAGE_MAX];
} cpng_error;

typedef struct {
  unsigned char *data;
  size_t size;
  size_t capacity;
  int failed;
} cpng_buffer;

typedef struct {
  const unsigned char *data;
  size_t size;
  size_t offset;
} cpng_reader;

static void cpng_error_fn(png_structp png, png_const_charp text) {
  cpng_error *err = (cpng_error *)png_get_error_ptr(png);
  snprintf(err->message, sizeof err->message, "%s", text);
  png_longjmp(png, 1);
}

static void cpng_warning_fn(png_structp png, png_const_charp text) {
  (void)png;
  (void)text;  // warnings (e.g. unknown chunks) do not fail the operation
}

static void cpng_write_fn(png_structp png, png_bytep bytes, png_size_t length) {
  cpng_buffer *buf = (cpng_buffer *)png_get_io_ptr(png);
  if (buf->size + length > buf->capacity) {
    size_t capacity = buf->capacity ? buf->capacity : 65536;
    while (capacity < buf->size + length) capacity *= 2;
    unsigned char *grown = realloc(buf->data, capacity);
    if (!grown) png_error(png, "out of memory");
    buf->data = grown;
    buf->capacity = capacity;
  }
  memcpy(buf->data + buf->size, bytes, length);
  buf->size += length;
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

static inline uint16_t cpng_unit_to_level(float v, float max) {
  v = v > 0.0f ? v : 0.0f;  // NaN becomes 0
  v = v < 1.0f ? v : 1.0f;
  return (uint16_t)(int)(v * max + 0.5f);  // via int32, which vectorises
}

// One row into PNG's sample layout (8-bit, or 16-bit big-endian). A separate
// function with plain pointers, one loop per kind, so that the loops vectorise (the
// caller's row pointer is volatile because it lives across setjmp).
static void cpng_convert_row(const unsigned char *restrict source, CPNG_PixelKind kind, int width, int bit_depth,
                             const uint16_t *restrict levels, unsigned char *restrict dst) {
  if (kind == CPNG_PIXELS_U8_TABLE) {
    if (bit_depth == 16) {
      for (int x = 0; x < width; x++) {
        uint16_t v = levels[source[x]];
        dst[2 * x] = (unsigned char)(v >> 8);
        dst[2 * x + 1] = (unsigned char)(v & 0xff);
      }
    } else {
      for (int x = 0; x < width; x++) dst[x] = (unsigned char)levels[source[x]];
    }
  } else if (kind == CPNG_PIXELS_F32) {
    const float *src = (const float *)source;
    if (bit_depth == 16) {
      for (int x = 0; x < width; x++) {
        uint16_t v = cpng_unit_to_level(src[x], 65535.0f);
        dst[2 * x] = (unsigned char)(v >> 8);
        dst[2 * x + 1] = (unsigned char)(v & 0xff);
      }
    } else {
      for (int x = 0; x < width; x++) dst[x] = (unsigned char)cpng_unit_to_level(src[x], 255.0f);
    }
  } else if (kind == CPNG_PIXELS_U16) {
    const uint16_t *src = (const uint16_t *)source;
    for (int x = 0; x < width; x++) {
      dst[2 * x] = (unsigned char)(src[x] >> 8);
      dst[2 * x + 1] = (unsigned char)(src[x] & 0xff);
    }
  } else {  // 8-bit samples written as 16-bit: v * 257, so 255 becomes 65535
    for (int x = 0; x < width; x++) {
      dst[2 * x] = source[x];
      dst[2 * x + 1] = source[x];
    }
  }
}

int CPNG_encode_gray(const void *pixels, CPNG_PixelKind kind, int width, int height,
                     CPNG_EncodeOptions options, unsigned char **out, size_t *out_size,
                     char *message, size_t message_len) {
  cpng_error err;
  cpng_buffer buffer = {0};
  png_structp png = NULL;
  png_infop info = NULL;
  unsigned char *volatile row = NULL;
  uint16_t levels[256];
  memset(&err, 0, sizeof err);
  *out = NULL;
  *out_size = 0;
  if (kind == CPNG_PIXELS_U8_TABLE && !options.table) {
    cpng_copy_message("indexed samples need a table", message, message_len);
    return -1;
  }
  png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, cpng_error_fn, cpng_warning_fn);
  if (!png) { cpng_copy_message("cannot create PNG writer", message, message_len); return -1; }
  info = png_create_info_struct(png);
  if (!info) {
    png_destroy_write_struct(&png, NULL);
    cpng_copy_message("cannot create PNG info", message, message_len);
    return -1;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    free(buffer.data);
    free(row);
    cpng_copy_message(err.message, message, message_len);
    return -1;
  }
  // Room for the raw samples up front; untouched pages are never resident.
  buffer.capacity = (size_t)width * (size_t)height * (options.bit_depth == 16 ? 2 : 1) + 65536;
  buffer.data = malloc(buffer.capacity);
  if (!buffer.data) buffer.capacity = 0;
  png_set_write_fn(png, &buffer, cpng_write_fn, cpng_flush_fn);
  png_set_compression_level(png, options.compression_level);
  png_set_compression_strategy(png, options.strategy);
  png_set_filter(png, PNG_FILTER_TYPE_BASE, options.filters ? options.filters : PNG_FILTER_NONE);
  png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, options.bit_depth,
               PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_BASE,
               PNG_FILTER_TYPE_BASE);
  if (kind == CPNG_PIXELS_U16 && options.bit_depth != 16) png_error(png, "16-bit samples need bit depth 16");
  png_write_info(png, info);
  int bytes_per_sample = options.bit_depth == 16 ? 2 : 1;
  int need_row = !(kind == CPNG_PIXELS_U8 && options.bit_depth == 8);
  if (kind == CPNG_PIXELS_U8_TABLE) {
    // The same conversion as CPNG_PIXELS_F32 applies to each sample, done once per value.
    for (int i = 0; i < 256; i++) levels[i] = cpng_unit_to_level(options.table[i], options.bit_depth == 16 ? 65535.0f : 255.0f);
  }
  if (need_row) {
    (void)bytes_per_sample;
    row = malloc((size_t)width * 2);  // room for 16-bit samples whatever the input kind
    if (!row) png_error(png, "out of memory");
  }
  for (int y = 0; y < height; y++) {
    png_bytep target;
    if (!need_row) {
      target = (png_bytep)((const unsigned char *)pixels + (size_t)y * (size_t)width);
    } else {
      target = row;
      size_t sample_bytes = kind == CPNG_PIXELS_U16 ? 2 : kind == CPNG_PIXELS_F32 ? 4 : 1;
      cpng_convert_row((const unsigned char *)pixels + (size_t)y * (size_t)width * sample_bytes,
                       kind, width, options.bit_depth, levels, row);
    }
    png_write_row(png, target);
  }
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  free(row);
  *out = buffer.data;
  *out_size = buffer.size;
  return 0;
}

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
