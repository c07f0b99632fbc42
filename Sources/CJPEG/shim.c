#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <math.h>
#include <jpeglib.h>
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

// Branch-free so that the row loop vectorises: NaN fails both comparisons and
// becomes 0; values outside [0, 1] are clamped.
static inline unsigned char cjpeg_unit_to_byte(float v) {
  v = v > 0.0f ? v : 0.0f;
  v = v < 1.0f ? v : 1.0f;
  int level = (int)(v * 255.0f + 0.5f);  // via int32, which vectorises
  return (unsigned char)level;
}

// A separate function with plain pointers: the caller's row pointer is volatile
// (it lives across setjmp), which would stop the loop from vectorising.
static void cjpeg_convert_row(const float *restrict src, unsigned char *restrict dst, int width) {
  for (int x = 0; x < width; x++) dst[x] = cjpeg_unit_to_byte(src[x]);
}

static void cjpeg_lookup_row(const unsigned char *restrict src, unsigned char *restrict dst,
                             const unsigned char *restrict table, int width) {
  for (int x = 0; x < width; x++) dst[x] = table[src[x]];
}

int CJPEG_encode_gray(const void *pixels, CJPEG_PixelKind kind, int width, int height,
                      size_t row_stride, CJPEG_EncodeOptions options,
                      unsigned char **out, unsigned long *out_size,
                      char *message, size_t message_len) {
  struct jpeg_compress_struct cinfo;
  cjpeg_error err;
  unsigned char *volatile row = NULL;
  unsigned char *volatile initial = NULL;
  unsigned char table[256];
  memset(&err, 0, sizeof err);
  *out = NULL;
  *out_size = 0;
  if (kind == CJPEG_PIXELS_U8_TABLE && !options.table) {
    cjpeg_copy_message("indexed samples need a table", message, message_len);
    return -1;
  }
  cinfo.err = jpeg_std_error(&err.base);
  err.base.error_exit = cjpeg_error_exit;
  err.base.emit_message = cjpeg_emit_message;
  if (setjmp(err.jump)) {
    jpeg_destroy_compress(&cinfo);
    free(row);
    if (*out && *out != initial) free(*out);
    free(initial);
    *out = NULL;
    *out_size = 0;
    cjpeg_copy_message(err.message, message, message_len);
    return -1;
  }
  jpeg_create_compress(&cinfo);
  // Start with room for one byte per pixel: pages never written are never
  // resident, and most images then need no reallocation and copy. If libjpeg does
  // outgrow it, it moves to a buffer of its own and this one is freed below.
  initial = malloc((size_t)width * (size_t)height + 65536);
  *out = initial;
  *out_size = initial ? (unsigned long)width * (unsigned long)height + 65536 : 0;
  jpeg_mem_dest(&cinfo, out, out_size);
  cinfo.image_width = (JDIMENSION)width;
  cinfo.image_height = (JDIMENSION)height;
  cinfo.input_components = 1;
  cinfo.in_color_space = JCS_GRAYSCALE;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, options.quality, TRUE);
  cinfo.optimize_coding = options.optimize ? TRUE : FALSE;
  if (options.restart_rows > 0) cinfo.restart_in_rows = options.restart_rows;
  if (options.progressive) jpeg_simple_progression(&cinfo);
  jpeg_start_compress(&cinfo, TRUE);
  if (kind == CJPEG_PIXELS_U8_TABLE) {
    // The same conversion as CJPEG_PIXELS_F32 applies to each sample, done once per value.
    for (int i = 0; i < 256; i++) table[i] = cjpeg_unit_to_byte(options.table[i]);
  }
  if (kind != CJPEG_PIXELS_U8) {
    row = malloc((size_t)width);
    if (!row) {
      jpeg_destroy_compress(&cinfo);
      if (*out && *out != initial) free(*out);
      free(initial);
      *out = NULL;
      cjpeg_copy_message("out of memory", message, message_len);
      return -1;
    }
  }
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW rows[1];
    if (kind == CJPEG_PIXELS_F32) {
      const float *src = (const float *)pixels + (size_t)cinfo.next_scanline * row_stride;
      cjpeg_convert_row(src, row, width);
      rows[0] = row;
    } else if (kind == CJPEG_PIXELS_U8_TABLE) {
      const unsigned char *src = (const unsigned char *)pixels + (size_t)cinfo.next_scanline * row_stride;
      cjpeg_lookup_row(src, row, table, width);
      rows[0] = row;
    } else {
      rows[0] = (JSAMPROW)((const unsigned char *)pixels + (size_t)cinfo.next_scanline * row_stride);
    }
    jpeg_write_scanlines(&cinfo, rows, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  free(row);
  if (*out != initial) free(initial);
  return 0;
}

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
