#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>
#include <jerror.h>
#include "CJPEG.h"

typedef struct {
  struct jpeg_error_mgr base;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  int warned;
} cjpeg_error;

static void cjpeg_error_exit(j_common_ptr cinfo) {
  cjpeg_error *err = (cjpeg_error *)cinfo->err;
  (*cinfo->err->format_message)(cinfo, err->message);
  longjmp(err->jump, 1);
}

static void cjpeg_emit_message(j_common_ptr cinfo, int level) {
  cjpeg_error *err = (cjpeg_error *)cinfo->err;
  if (level < 0 && !err->warned) {  // a warning: keep the first one
    (*cinfo->err->format_message)(cinfo, err->message);
    err->warned = 1;
  }
}

static void cjpeg_copy_message(const char *source, char *message, size_t message_len) {
  if (message && message_len > 0) {
    snprintf(message, message_len, "%s", source);
  }
}

// ---- Incremental encoder ----------------------------------------------------------

enum { CJPEG_WRITING = 0, CJPEG_FAILED = 1, CJPEG_FINISHED = 2 };

struct CJPEG_Encoder {
  struct jpeg_compress_struct cinfo;
  struct jpeg_destination_mgr destination;
  struct jpeg_progress_mgr progress;
  int (*poll)(void *context);
  void *poll_context;
  cjpeg_error err;  // its jump buffer is set anew by every call
  int state;
  int created;      // cinfo holds libjpeg's memory
  unsigned char *buffer;  // the output so far; ours until finish hands it over
  size_t capacity;
  size_t size;      // set when libjpeg terminates the destination
};

// Frees libjpeg's state and the output; only the message stays.
static void cjpeg_encoder_abandon(CJPEG_Encoder *encoder) {
  if (encoder->created) jpeg_destroy_compress(&encoder->cinfo);
  encoder->created = 0;
  free(encoder->buffer);
  encoder->buffer = NULL;
  encoder->capacity = 0;
  encoder->state = CJPEG_FAILED;
}

static void cjpeg_encoder_fail(CJPEG_Encoder *encoder, const char *message) {
  snprintf(encoder->err.message, sizeof encoder->err.message, "%s", message);
  cjpeg_encoder_abandon(encoder);
}

// The destination: one malloc'd buffer that grows by realloc (for large buffers
// realloc remaps pages instead of copying them).
static void cjpeg_init_destination(j_compress_ptr cinfo) {
  CJPEG_Encoder *encoder = (CJPEG_Encoder *)cinfo->client_data;
  cinfo->dest->next_output_byte = encoder->buffer;
  cinfo->dest->free_in_buffer = encoder->capacity;
}

static boolean cjpeg_empty_output_buffer(j_compress_ptr cinfo) {
  CJPEG_Encoder *encoder = (CJPEG_Encoder *)cinfo->client_data;
  size_t capacity = encoder->capacity * 2;  // libjpeg calls this only with the buffer full
  unsigned char *grown = realloc(encoder->buffer, capacity);
  if (!grown) ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 99);
  encoder->buffer = grown;
  cinfo->dest->next_output_byte = grown + encoder->capacity;
  cinfo->dest->free_in_buffer = capacity - encoder->capacity;
  encoder->capacity = capacity;
  return TRUE;
}

static void cjpeg_term_destination(j_compress_ptr cinfo) {
  CJPEG_Encoder *encoder = (CJPEG_Encoder *)cinfo->client_data;
  encoder->size = encoder->capacity - cinfo->dest->free_in_buffer;
}

CJPEG_Encoder *CJPEG_encoder_begin(CJPEG_EncodeOptions options, int width, int height) {
  CJPEG_Encoder *encoder = calloc(1, sizeof *encoder);
  if (!encoder) return NULL;
  encoder->cinfo.err = jpeg_std_error(&encoder->err.base);
  encoder->err.base.error_exit = cjpeg_error_exit;
  encoder->err.base.emit_message = cjpeg_emit_message;
  encoder->cinfo.client_data = encoder;
  if (setjmp(encoder->err.jump)) {
    cjpeg_encoder_abandon(encoder);
    return encoder;
  }
  encoder->created = 1;  // jpeg_destroy_compress is safe on a half-created struct
  jpeg_create_compress(&encoder->cinfo);
  // Start with room for one byte per pixel: pages never written are never
  // resident, and most images then need no reallocation.
  size_t initial = 65536;
  if (options.output_capacity > 0) {
    initial = options.output_capacity;
  } else if (width > 0 && height > 0 && width <= JPEG_MAX_DIMENSION && height <= JPEG_MAX_DIMENSION) {
    initial += (size_t)width * (size_t)height;
  }
  encoder->buffer = malloc(initial);
  if (!encoder->buffer) encoder->buffer = malloc(initial = 65536);
  if (!encoder->buffer) {
    cjpeg_encoder_fail(encoder, "out of memory for the JPEG output buffer");
    return encoder;
  }
  encoder->capacity = initial;
  encoder->destination.init_destination = cjpeg_init_destination;
  encoder->destination.empty_output_buffer = cjpeg_empty_output_buffer;
  encoder->destination.term_destination = cjpeg_term_destination;
  encoder->cinfo.dest = &encoder->destination;
  // Negative sizes become huge unsigned ones, which libjpeg refuses with its message.
  encoder->cinfo.image_width = (JDIMENSION)width;
  encoder->cinfo.image_height = (JDIMENSION)height;
  encoder->cinfo.input_components = 1;
  encoder->cinfo.in_color_space = JCS_GRAYSCALE;
  jpeg_set_defaults(&encoder->cinfo);
  jpeg_set_quality(&encoder->cinfo, options.quality, TRUE);
  encoder->cinfo.optimize_coding = options.optimize ? TRUE : FALSE;
  if (options.restart_rows > 0) encoder->cinfo.restart_in_rows = options.restart_rows;
  if (options.progressive) jpeg_simple_progression(&encoder->cinfo);
  jpeg_start_compress(&encoder->cinfo, TRUE);
  return encoder;
}

// Every call but begin starts the same way: fail fast once failed, and refuse
// calls after finish.
static int cjpeg_encoder_usable(CJPEG_Encoder *encoder) {
  if (encoder->state == CJPEG_FINISHED) cjpeg_encoder_fail(encoder, "the JPEG encoder has already finished");
  return encoder->state == CJPEG_WRITING;
}

int CJPEG_encoder_write_rows(CJPEG_Encoder *encoder, const unsigned char *rows, size_t stride, int count) {
  if (!cjpeg_encoder_usable(encoder)) return -1;
  if (setjmp(encoder->err.jump)) {
    cjpeg_encoder_abandon(encoder);
    return -1;
  }
  int done = 0;
  while (done < count) {
    JSAMPROW pointers[64];
    int batch = count - done < 64 ? count - done : 64;
    for (int i = 0; i < batch; i++) pointers[i] = (JSAMPROW)(rows + (size_t)(done + i) * stride);
    JDIMENSION written = jpeg_write_scanlines(&encoder->cinfo, pointers, (JDIMENSION)batch);
    // Too many rows is only a warning to libjpeg ("Application transferred too many
    // scanlines"), and the rows would be lost: an error here.
    if (encoder->err.warned || written == 0) {
      if (!encoder->err.warned) snprintf(encoder->err.message, sizeof encoder->err.message, "libjpeg accepted no rows");
      cjpeg_encoder_abandon(encoder);
      return -1;
    }
    done += (int)written;
  }
  return 0;
}

int CJPEG_encoder_finish(CJPEG_Encoder *encoder, unsigned char **out, size_t *out_size) {
  *out = NULL;
  *out_size = 0;
  if (!cjpeg_encoder_usable(encoder)) return -1;
  if (setjmp(encoder->err.jump)) {
    cjpeg_encoder_abandon(encoder);
    return -1;
  }
  jpeg_finish_compress(&encoder->cinfo);  // fewer rows than the height: libjpeg's error
  if (encoder->err.warned) {
    cjpeg_encoder_abandon(encoder);
    return -1;
  }
  jpeg_destroy_compress(&encoder->cinfo);
  encoder->created = 0;
  *out = encoder->buffer;
  *out_size = encoder->size;
  encoder->buffer = NULL;
  encoder->capacity = 0;
  encoder->state = CJPEG_FINISHED;
  return 0;
}

int CJPEG_encoder_drain(CJPEG_Encoder *encoder, const unsigned char **out, size_t *out_size) {
  *out = NULL;
  *out_size = 0;
  if (encoder->state != CJPEG_WRITING) return -1;
  // Between calls libjpeg holds no pointer into the buffer but the destination's.
  *out = encoder->buffer;
  *out_size = encoder->capacity - encoder->destination.free_in_buffer;
  encoder->destination.next_output_byte = encoder->buffer;
  encoder->destination.free_in_buffer = encoder->capacity;
  return 0;
}

// libjpeg calls its progress monitor from inside its passes, where leaving by
// longjmp is as safe as from error_exit.
static void cjpeg_progress_monitor(j_common_ptr cinfo) {
  CJPEG_Encoder *encoder = (CJPEG_Encoder *)cinfo->client_data;
  if (encoder->poll && encoder->poll(encoder->poll_context)) {
    snprintf(encoder->err.message, sizeof encoder->err.message, "cancelled");
    longjmp(encoder->err.jump, 1);
  }
}

void CJPEG_encoder_set_poll(CJPEG_Encoder *encoder, int (*poll)(void *context), void *context) {
  encoder->poll = poll;
  encoder->poll_context = context;
  encoder->progress.progress_monitor = cjpeg_progress_monitor;
  if (encoder->created) encoder->cinfo.progress = &encoder->progress;
}

int CJPEG_encoder_failed(const CJPEG_Encoder *encoder) { return encoder->state == CJPEG_FAILED; }

const char *CJPEG_encoder_message(const CJPEG_Encoder *encoder) { return encoder->err.message; }

void CJPEG_encoder_destroy(CJPEG_Encoder *encoder) {
  if (!encoder) return;
  if (encoder->created) jpeg_destroy_compress(&encoder->cinfo);
  free(encoder->buffer);
  free(encoder);
}

// ---- Decoder -----------------------------------------------------------------------

int CJPEG_decode(const unsigned char *data, size_t size, int *width, int *height,
                 int *components, unsigned char **pixels,
                 char *message, size_t message_len) {
  struct jpeg_decompress_struct cinfo;
  cjpeg_error err;
  unsigned char *volatile buffer = NULL;
  memset(&err, 0, sizeof err);
  *pixels = NULL;
  cinfo.err = jpeg_std_error(&err.base);
  err.base.error_exit = cjpeg_error_exit;
  err.base.emit_message = cjpeg_emit_message;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    free(buffer);
    cjpeg_copy_message(err.message, message, message_len);
    return -1;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, (unsigned long)size);
  jpeg_read_header(&cinfo, TRUE);
  jpeg_start_decompress(&cinfo);
  size_t stride = (size_t)cinfo.output_width * (size_t)cinfo.output_components;
  buffer = malloc(stride * cinfo.output_height);
  if (!buffer) {
    jpeg_destroy_decompress(&cinfo);
    cjpeg_copy_message("out of memory", message, message_len);
    return -1;
  }
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW rows[1] = { buffer + (size_t)cinfo.output_scanline * stride };
    jpeg_read_scanlines(&cinfo, rows, 1);
  }
  jpeg_finish_decompress(&cinfo);
  *width = (int)cinfo.output_width;
  *height = (int)cinfo.output_height;
  *components = cinfo.output_components;
  jpeg_destroy_decompress(&cinfo);
  if (err.warned) {
    free(buffer);
    cjpeg_copy_message(err.message, message, message_len);
    return -1;
  }
  *pixels = buffer;
  return 0;
}

void CJPEG_free(void *pointer) { free(pointer); }

#define CJPEG_STRINGIFY_(x) #x
#define CJPEG_STRINGIFY(x) CJPEG_STRINGIFY_(x)

const char *CJPEG_library_version(void) {
#if defined(LIBJPEG_TURBO_VERSION)
  return CJPEG_STRINGIFY(LIBJPEG_TURBO_VERSION);
#else
  return "libjpeg " CJPEG_STRINGIFY(JPEG_LIB_VERSION);
#endif
}
