#ifndef CCURL_H
#define CCURL_H
// curl_easy_setopt and curl_easy_getinfo are variadic and do not import into Swift;
// these typed wrappers are the only reason this target exists.
#include <curl/curl.h>

typedef size_t (*CCurl_data_callback)(char *buffer, size_t size, size_t count, void *context);

static inline CURLcode CCurl_setopt_long(CURL *handle, CURLoption option, long value) {
  return curl_easy_setopt(handle, option, value);
}
static inline CURLcode CCurl_setopt_offset(CURL *handle, CURLoption option, curl_off_t value) {
  return curl_easy_setopt(handle, option, value);
}
static inline CURLcode CCurl_setopt_string(CURL *handle, CURLoption option, const char *value) {
  return curl_easy_setopt(handle, option, value);
}
static inline CURLcode CCurl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
  return curl_easy_setopt(handle, option, value);
}
static inline CURLcode CCurl_setopt_headers(CURL *handle, struct curl_slist *headers) {
  return curl_easy_setopt(handle, CURLOPT_HTTPHEADER, headers);
}
static inline CURLcode CCurl_setopt_callback(CURL *handle, CURLoption option, CCurl_data_callback callback) {
  return curl_easy_setopt(handle, option, callback);
}
static inline CURLcode CCurl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
  return curl_easy_getinfo(handle, info, value);
}
static inline CURLcode CCurl_getinfo_double(CURL *handle, CURLINFO info, double *value) {
  return curl_easy_getinfo(handle, info, value);
}
#endif
