#ifndef CPNG_H
#define CPNG_H
// libpng reports errors by longjmp-ing out of png_error, which Swift cannot handle;
// these functions own the setjmp and return a status with libpng's message instead.
#include <stddef.h>
#include <stdint.h>

#define CPNG_MESSAGE_MAX 256

typedef struct {
  int bit_depth;          // 8 or 16
  int compression_level;  // zlib level 0...9
  int filters;            // PNG_FILTER_* mask (PNG_NO_FILTERS = 0 means "None" only)
  int strategy;           // zlib strategy (Z_DEFAULT_STRATEGY, Z_FILTERED, Z_HUFFMAN_ONLY, Z_RLE, Z_FIXED)
  size_t output_capacity; // initial output buffer; 0: room for the raw samples
} CPNG_EncodeOptions;

/// An encoder for one grayscale image, fed rows in any number of calls. It keeps its
/// error state: after the first failure every call returns -1 at once and
/// CPNG_encoder_message keeps the first failure's message.
typedef struct CPNG_Encoder CPNG_Encoder;

/// Starts a width x height image, written to a growable malloc'd buffer. Returns NULL
/// only when there is no memory for the encoder itself; any other failure (a size or
/// option libpng refuses) returns an encoder that has failed (CPNG_encoder_failed).
CPNG_Encoder *CPNG_encoder_begin(CPNG_EncodeOptions options, int width, int height);

/// Compresses `count` rows of `width` samples, the first at `rows`, each `stride`
/// bytes after the previous: bytes at bit depth 8, native-endian uint16_t at 16.
/// More rows than the image has is an error. Returns 0, or -1 with the message kept.
int CPNG_encoder_write_rows(CPNG_Encoder *encoder, const void *rows, size_t stride, int count);

/// The output written since the last drain, for a caller that streams it: *out
/// points into the encoder's buffer, valid until the next call on the encoder, which
/// reuses the buffer from its start. Returns 0, or -1 once the encoder has failed or
/// finished.
int CPNG_encoder_drain(CPNG_Encoder *encoder, const unsigned char **out, size_t *out_size);

/// Completes the image. On success *out is the malloc'd PNG (the caller frees it with
/// CPNG_free) and the encoder holds nothing more; fewer rows than the height is an
/// error. Returns 0, or -1 with the message kept.
int CPNG_encoder_finish(CPNG_Encoder *encoder, unsigned char **out, size_t *out_size);

/// Non-zero once a call has failed.
int CPNG_encoder_failed(const CPNG_Encoder *encoder);

/// The first failure's message; empty while there is none.
const char *CPNG_encoder_message(const CPNG_Encoder *encoder);

/// Frees the encoder and everything it holds, whatever state it is in.
void CPNG_encoder_destroy(CPNG_Encoder *encoder);

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

/// The version of the libpng loaded at run time (png_get_libpng_ver).
const char *CPNG_library_version(void);

/// The version of the zlib loaded at run time, the one libpng uses: zlibVersion
/// looked up with dlsym, as this target links libpng only. Falls back to the
/// zlib.h it was built against.
const char *CPNG_zlib_version(void);

#endif
