// The C floor of the reference job: one thread, whole images, no framework.
// Generates an N x N grid of Poisson(lambda) samples (inversion of a tabulated CDF
// driven by xoshiro256**), normalises it by its min and max to 8-bit samples,
// encodes it with libjpeg at quality 95 and writes the file.
//
//   cc -O2 -o c_floor Benchmarks/c_floor.c -ljpeg -lcurl -lm
//   ./c_floor SIZE OUT.jpg [LAMBDA]
//   ./c_floor SIZE DIR LAMBDA --items FIRST STEP COUNT [URL KEY:SECRET]
//   ./c_floor SIZE - LAMBDA --encode-only COUNT
//
// It is what a careful programmer writes without streaming or threads: the
// baseline issue 12 compares the runner against. The second form is the floor of a
// sweep (issue 15): images FIRST, FIRST+STEP, ... (COUNT of them), each seeded by
// its number, written to DIR/NUMBER.jpg and, with a URL, PUT to URL/NUMBER.jpg
// through one libcurl handle (kept-alive connections, SigV4 signed by libcurl with
// the key and secret, region us-east-1). The third encodes one image COUNT times
// in memory: libjpeg-turbo's share alone, which no JPEG pipeline goes below.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <jpeglib.h>

static uint64_t state[4] = {0x9E3779B97F4A7C15ull, 0xBF58476D1CE4E5B9ull, 0x94D049BB133111EBull, 0x2545F4914F6CDD1Dull};

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t next(void) {
  uint64_t result = rotl(state[1] * 5, 7) * 9, t = state[1] << 17;
  state[2] ^= state[0]; state[3] ^= state[1]; state[1] ^= state[2]; state[0] ^= state[3];
  state[2] ^= t; state[3] = rotl(state[3], 45);
  return result;
}

static void seed_state(uint64_t seed) {
  // splitmix64, as xoshiro's authors suggest for seeding.
  for (int i = 0; i < 4; i++) {
    uint64_t z = (seed += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    state[i] = z ^ (z >> 31);
  }
}

// One N x N grid of Poisson(lambda) bytes, normalised by its min and max to 8 bits.
static void make_image(unsigned char *grid, size_t n, double lambda) {
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
}

// Encodes the grid as a grayscale JPEG at quality 95, to a file or to memory.
static void encode(unsigned char *grid, size_t n, FILE *file, unsigned char **memory, unsigned long *size) {
  struct jpeg_compress_struct cinfo;
  struct jpeg_error_mgr jerr;
  cinfo.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&cinfo);
  if (file) jpeg_stdio_dest(&cinfo, file); else jpeg_mem_dest(&cinfo, memory, size);
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
}

static size_t discard(char *data, size_t size, size_t count, void *unused) { (void)data; (void)unused; return size * count; }

// The sweep's floor: COUNT images, each written to a file and, with a URL, uploaded.
static int sweep(size_t n, const char *dir, double lambda, long first, long step, long count, const char *url, const char *user) {
  unsigned char *grid = malloc(n * n);
  if (!grid) { fprintf(stderr, "out of memory\n"); return 1; }
  CURL *curl = NULL;
  if (url) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    curl = curl_easy_init();
    curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:s3");
    curl_easy_setopt(curl, CURLOPT_USERPWD, user);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
  }
  char path[4096];
  for (long i = first, done = 0; done < count; i += step, done++) {
    seed_state((uint64_t)i);
    make_image(grid, n, lambda);
    unsigned char *jpeg = NULL;
    unsigned long size = 0;
    encode(grid, n, NULL, &jpeg, &size);
    snprintf(path, sizeof path, "%s/%ld.jpg", dir, i);
    FILE *out = fopen(path, "wb");
    if (!out || fwrite(jpeg, 1, size, out) != size || fclose(out) != 0) { perror(path); return 1; }
    if (curl) {
      char target[4096];
      snprintf(target, sizeof target, "%s/%ld.jpg", url, i);
      // S3 wants the payload's SHA-256 in a header; UNSIGNED-PAYLOAD is what a client
      // that does not hash sends (libcurl signs the header, not the body).
      struct curl_slist *headers = curl_slist_append(NULL, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
      headers = curl_slist_append(headers, "Content-Type: image/jpeg");
      curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
      curl_easy_setopt(curl, CURLOPT_URL, target);
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, jpeg);
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)size);
      CURLcode result = curl_easy_perform(curl);
      long status = 0;
      curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
      curl_slist_free_all(headers);
      if (result != CURLE_OK || status != 200) {
        fprintf(stderr, "PUT %s: %s, HTTP %ld\n", target, curl_easy_strerror(result), status);
        return 1;
      }
    }
    free(jpeg);
  }
  if (curl) curl_easy_cleanup(curl);
  free(grid);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: c_floor SIZE OUT.jpg [LAMBDA]\n       c_floor SIZE DIR LAMBDA --items FIRST STEP COUNT [URL KEY:SECRET]\n"
                    "       c_floor SIZE - LAMBDA --encode-only COUNT\n");
    return 2;
  }
  size_t n = (size_t)atol(argv[1]);
  double lambda = argc > 3 ? atof(argv[3]) : 3.0;
  if (argc == 6 && strcmp(argv[4], "--encode-only") == 0) {
    unsigned char *grid = malloc(n * n);
    if (!grid) { fprintf(stderr, "out of memory\n"); return 1; }
    make_image(grid, n, lambda);
    for (long i = atol(argv[5]); i > 0; i--) {
      unsigned char *jpeg = NULL;
      unsigned long size = 0;
      encode(grid, n, NULL, &jpeg, &size);
      free(jpeg);
    }
    free(grid);
    return 0;
  }
  if (argc > 4 && strcmp(argv[4], "--items") == 0) {
    if (argc != 8 && argc != 10) { fprintf(stderr, "c_floor: --items FIRST STEP COUNT [URL KEY:SECRET]\n"); return 2; }
    return sweep(n, argv[2], lambda, atol(argv[5]), atol(argv[6]), atol(argv[7]), argc == 10 ? argv[8] : NULL, argc == 10 ? argv[9] : NULL);
  }
  unsigned char *grid = malloc(n * n);
  if (!grid) { fprintf(stderr, "out of memory\n"); return 1; }
  make_image(grid, n, lambda);
  FILE *out = fopen(argv[2], "wb");
  if (!out) { perror(argv[2]); return 1; }
  encode(grid, n, out, NULL, NULL);
  if (fclose(out) != 0) { perror(argv[2]); return 1; }
  free(grid);
  return 0;
}
