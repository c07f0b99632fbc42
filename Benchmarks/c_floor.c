// The C floor of the reference job: one thread, whole images, no framework.
// Generates an N x N grid of Poisson(lambda) samples (inversion of a tabulated CDF
// driven by xoshiro256**), normalises it by its min and max to 8-bit samples,
// encodes it with libjpeg at quality 95 and writes the file.
//
//   cc -O2 -o c_floor Benchmarks/c_floor.c -ljpeg -lm
//   ./c_floor SIZE OUT.jpg [LAMBDA]
//
// It is what a careful programmer writes without streaming or threads: the
// baseline issue 12 compares the runner against.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <jpeglib.h>

static uint64_t state[4] = {0x9E3779B97F4A7C15ull, 0xBF58476D1CE4E5B9ull, 0x94D049BB133111EBull, 0x2545F4914F6CDD1Dull};

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t next(void) {
  uint64_t result = rotl(state[1] * 5, 7) * 9, t = state[1] << 17;
  state[2] ^= state[0]; state[3] ^= state[1]; state[1] ^= state[2]; state[0] ^= state[3];
  state[2] ^= t; state[3] = rotl(state[3], 45);
  return result;
}

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: c_floor SIZE OUT.jpg [LAMBDA]\n"); return 2; }
  size_t n = (size_t)atol(argv[1]);
  double lambda = argc > 3 ? atof(argv[3]) : 3.0;
  // The CDF up to where the tail is negligible, as thresholds on 53-bit uniforms.
  double cdf[256];
  int values = 0;
  double p = exp(-lambda), sum = 0;
  for (int k = 0; k < 255; k++) {
    sum += p;
    cdf[values++] = sum;
    if (k > lambda && 1 - sum < 1e-17) break;
    p *= lambda / (k + 1);
  }
  unsigned char *grid = malloc(n * n);
  if (!grid) { fprintf(stderr, "out of memory\n"); return 1; }
  unsigned char low = 255, high = 0;
  for (size_t i = 0; i < n * n; i++) {
    double u = (next() >> 11) * 0x1.0p-53;
    int k = 0;
    while (k < values - 1 && u >= cdf[k]) k++;
    grid[i] = (unsigned char)k;
    if (grid[i] < low) low = grid[i];
    if (grid[i] > high) high = grid[i];
  }
  // Normalise to [0, 1] and scale to 8 bits: a table of the 256 possible bytes.
  unsigned char table[256];
  for (int v = 0; v < 256; v++) {
    double unit = high > low ? (double)(v - low) / (high - low) : 0;
    table[v] = (unsigned char)lround(unit * 255);
  }
  for (size_t i = 0; i < n * n; i++) grid[i] = table[grid[i]];

  FILE *out = fopen(argv[2], "wb");
  if (!out) { perror(argv[2]); return 1; }
  struct jpeg_compress_struct cinfo;
  struct jpeg_error_mgr jerr;
  cinfo.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&cinfo);
  jpeg_stdio_dest(&cinfo, out);
  cinfo.image_width = (JDIMENSION)n;
  cinfo.image_height = (JDIMENSION)n;
  cinfo.input_components = 1;
  cinfo.in_color_space = JCS_GRAYSCALE;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, 95, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = grid + (size_t)cinfo.next_scanline * n;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  if (fclose(out) != 0) { perror(argv[2]); return 1; }
  free(grid);
  return 0;
}
