#ifndef CPNG_H
#define CPNG_H
// libpng reports errors by longjmp-ing out of png_error, which Swift cannot handle;
// these functions own the setjmp and return a status with libpng's message instead.
#include <stddef.h>
#include <stdint.h>

#define CPNG_MESSAGE_MAX 256

typedef enum {
  CPNG_PIXELS_U8 = 0,
  CPNG_PIXELS_U16 = 1,   // native-endian 16-bit samples
  CPNG_PIXELS_F32 = 2,   // float in [0, 1], scaled to the bit depth with rounding, clamped, NaN -> 0
  CPNG_PIXELS_U8_TABLE = 3,  // one byte per sample, an index into `table` (256 floats),
                             // whose entries are converted as CPNG_PIXELS_F32 samples are
} CPNG_PixelKind;

typedef struct {
  int bit_depth;          // 8 or 16
  int compression_level;  // zlib level 0...9
  int filters;            // PNG_FILTER_* mask (PNG_NO_FILTERS = 0 means "None" only)
  int strategy;           // zlib strategy (Z_DEFAULT_STRATEGY, Z_FILTERED, Z_HUFFMAN_ONLY, Z_RLE, Z_FIXED)
  const float *table;     // CPNG_PIXELS_U8_TABLE only: 256 entries
} CPNG_EncodeOptions;

/// Encodes a grayscale image. On success *out is malloc'd (free with CPNG_free).
int CPNG_encode_gray(const void *pixels, CPNG_PixelKind kind, int width, int height,
                     CPNG_EncodeOptions options, unsigned char **out, size_t *out_size,
                     char *message, size_t message_len);

/// Decodes a PNG without any transformation but byte order: samples come out as
/// 8-bit, or 16-bit native-endian, `channels` per pixel. *pixels is malloc'd.
int CPNG_decode(const unsigned char *data, size_t size, int *width, int *height,
                int *bit_depth, int *channels, unsigned char **pixels, size_t *pixels_size,
                char *message, size_t message_len);

void CPNG_free(void *pointer);

// Values of libpng's and zlib's macros, which Swift cannot import from function-like
// or dependent macros reliably.
int CPNG_filter_none(void);
int CPNG_filter_sub(void);
int CPNG_filter_up(void);
int CPNG_filter_avg(void);
int CPNG_filter_paeth(void);
int CPNG_filter_all(void);

#endif
