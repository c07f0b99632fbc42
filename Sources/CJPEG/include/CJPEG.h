#ifndef CJPEG_H
#define CJPEG_H
// libjpeg reports fatal errors by longjmp-ing out of error_exit, which Swift cannot
// handle; these functions own the setjmp and return a status with the library's
// message instead. Everything else (parameter checks, policy) lives in Swift.
#include <stddef.h>
#include <stdint.h>

#define CJPEG_MESSAGE_MAX 256

typedef enum {
  CJPEG_PIXELS_U8 = 0,   // one byte per sample
  CJPEG_PIXELS_F32 = 1,  // float in [0, 1], converted per row: round(v * 255), clamped, NaN -> 0
  CJPEG_PIXELS_U8_TABLE = 2,  // one byte per sample, an index into `table` (256 floats),
                              // whose entries are converted as CJPEG_PIXELS_F32 samples are
} CJPEG_PixelKind;

typedef struct {
  int quality;      // 1...100
  int progressive;  // non-zero: progressive scan script
  int optimize;     // non-zero: optimal Huffman tables
  int restart_rows; // > 0: a restart marker every this many MCU rows (8 pixel rows each)
  const float *table; // CJPEG_PIXELS_U8_TABLE only: 256 entries
} CJPEG_EncodeOptions;

/// Encodes a single-channel image; on success *out is malloc'd (free with CJPEG_free).
/// Returns 0 on success, -1 with `message` filled on failure.
int CJPEG_encode_gray(const void *pixels, CJPEG_PixelKind kind, int width, int height,
                      size_t row_stride, CJPEG_EncodeOptions options,
                      unsigned char **out, unsigned long *out_size,
                      char *message, size_t message_len);

/// Decodes a JPEG to 8-bit samples (components 1 or 3). Warnings, such as a truncated
/// file, count as errors. On success *pixels is malloc'd (free with CJPEG_free).
int CJPEG_decode(const unsigned char *data, size_t size, int *width, int *height,
                 int *components, unsigned char **pixels,
                 char *message, size_t message_len);

void CJPEG_free(void *pointer);

#endif
