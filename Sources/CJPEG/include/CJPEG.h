#ifndef CJPEG_H
#define CJPEG_H
// libjpeg reports fatal errors by longjmp-ing out of error_exit, which Swift cannot
// handle; these functions own the setjmp and return a status with the library's
// message instead. Everything else (parameter checks, sample conversion, policy)
// lives in Swift.
#include <stddef.h>
#include <stdint.h>

#define CJPEG_MESSAGE_MAX 256

typedef struct {
  int quality;      // 1...100
  int progressive;  // non-zero: progressive scan script
  int optimize;     // non-zero: optimal Huffman tables
  int restart_rows; // > 0: a restart marker every this many MCU rows (8 pixel rows each)
  size_t output_capacity;  // initial output buffer; 0: room for one byte per pixel
} CJPEG_EncodeOptions;

/// An encoder for one single-channel 8-bit image, fed rows in any number of calls.
/// It keeps its error state: after the first failure every call returns -1 at once
/// and CJPEG_encoder_message keeps the first failure's message.
typedef struct CJPEG_Encoder CJPEG_Encoder;

/// Starts a width x height image, written to a growable malloc'd buffer. Returns NULL
/// only when there is no memory for the encoder itself; any other failure (such as
/// a size libjpeg refuses) returns an encoder that has failed (CJPEG_encoder_failed).
CJPEG_Encoder *CJPEG_encoder_begin(CJPEG_EncodeOptions options, int width, int height);

/// Compresses `count` rows of `width` bytes, the first at `rows`, each `stride` bytes
/// after the previous. Writing more rows than the image has is an error (libjpeg's
/// warning is taken as one). Returns 0, or -1 with the message kept.
int CJPEG_encoder_write_rows(CJPEG_Encoder *encoder, const unsigned char *rows, size_t stride, int count);

/// Completes the image. On success *out is the malloc'd JPEG (the caller frees it with
/// CJPEG_free) and the encoder holds nothing more; fewer rows than the height is an
/// error. Returns 0, or -1 with the message kept.
int CJPEG_encoder_finish(CJPEG_Encoder *encoder, unsigned char **out, size_t *out_size);

/// The output written since the last drain (headers and compressed rows), for a
/// caller that streams it: *out points into the encoder's buffer, valid until the
/// next call on the encoder, which reuses the buffer from its start. Returns 0, or -1
/// once the encoder has failed or finished.
int CJPEG_encoder_drain(CJPEG_Encoder *encoder, const unsigned char **out, size_t *out_size);

/// Lets a caller stop libjpeg's long passes: the final passes of progressive and
/// optimized images run inside CJPEG_encoder_finish. `poll(context)` is called about
/// once per row of blocks; when it returns non-zero the encoder fails with the
/// message "cancelled". `poll` may be NULL.
void CJPEG_encoder_set_poll(CJPEG_Encoder *encoder, int (*poll)(void *context), void *context);

/// Non-zero once a call has failed.
int CJPEG_encoder_failed(const CJPEG_Encoder *encoder);

/// The first failure's message; empty while there is none.
const char *CJPEG_encoder_message(const CJPEG_Encoder *encoder);

/// Frees the encoder and everything it holds, whatever state it is in.
void CJPEG_encoder_destroy(CJPEG_Encoder *encoder);

/// Decodes a JPEG to 8-bit samples (components 1 or 3). Warnings, such as a truncated
/// file, count as errors. On success *pixels is malloc'd (free with CJPEG_free).
int CJPEG_decode(const unsigned char *data, size_t size, int *width, int *height,
                 int *components, unsigned char **pixels,
                 char *message, size_t message_len);

void CJPEG_free(void *pointer);

/// The libjpeg(-turbo) version this target was built against ("2.1.5"), from
/// jconfig.h's macros, which do not import into Swift as strings; libjpeg-turbo has
/// no run-time version call.
const char *CJPEG_library_version(void);

#endif
