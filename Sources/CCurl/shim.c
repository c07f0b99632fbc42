#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include "CCurl.h"

static struct {
  CURLcode (*global_init)(long);
  CURL *(*easy_init)(void);
  void (*easy_cleanup)(CURL *);
  void (*easy_reset)(CURL *);
  CURLcode (*easy_perform)(CURL *);
  const char *(*easy_strerror)(CURLcode);
  CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
  CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
  struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
  void (*slist_free_all)(struct curl_slist *);
  curl_version_info_data *(*version_info)(CURLversion);
} api;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char load_error[256];

#define CCURL_RESOLVE(field, symbol)                                                     \
  do {                                                                                   \
    *(void **)(&api.field) = dlsym(library, symbol);                                     \
    if (!api.field) {                                                                    \
      snprintf(load_error, sizeof load_error, "libcurl has no symbol %s", symbol);       \
      return;                                                                            \
    }                                                                                    \
  } while (0)

static void ccurl_load_once(void) {
  void *library = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
  if (!library) {
    snprintf(load_error, sizeof load_error, "cannot load libcurl (install libcurl4): %s", dlerror());
    return;
  }
  CCURL_RESOLVE(global_init, "curl_global_init");
  CCURL_RESOLVE(easy_init, "curl_easy_init");
  CCURL_RESOLVE(easy_cleanup, "curl_easy_cleanup");
  CCURL_RESOLVE(easy_reset, "curl_easy_reset");
  CCURL_RESOLVE(easy_perform, "curl_easy_perform");
  CCURL_RESOLVE(easy_strerror, "curl_easy_strerror");
  CCURL_RESOLVE(easy_setopt, "curl_easy_setopt");
  CCURL_RESOLVE(easy_getinfo, "curl_easy_getinfo");
  CCURL_RESOLVE(slist_append, "curl_slist_append");
  CCURL_RESOLVE(slist_free_all, "curl_slist_free_all");
  CCURL_RESOLVE(version_info, "curl_version_info");
  CURLcode code = api.global_init(CURL_GLOBAL_DEFAULT);
  if (code != CURLE_OK) {
    snprintf(load_error, sizeof load_error, "curl_global_init failed: %s", api.easy_strerror(code));
    api.easy_init = NULL;
    return;
  }
  load_error[0] = 0;
}

int CCurl_load(char *message, size_t message_len) {
  pthread_once(&load_once, ccurl_load_once);
  if (load_error[0] || !api.easy_init) {
    if (message && message_len) snprintf(message, message_len, "%s", load_error[0] ? load_error : "libcurl failed to load");
    return -1;
  }
  return 0;
}

CURL *CCurl_easy_init(void) { return api.easy_init(); }
void CCurl_easy_cleanup(CURL *handle) { api.easy_cleanup(handle); }
void CCurl_easy_reset(CURL *handle) { api.easy_reset(handle); }
CURLcode CCurl_easy_perform(CURL *handle) { return api.easy_perform(handle); }
const char *CCurl_easy_strerror(CURLcode code) { return api.easy_strerror(code); }
struct curl_slist *CCurl_slist_append(struct curl_slist *list, const char *value) { return api.slist_append(list, value); }
void CCurl_slist_free_all(struct curl_slist *list) { api.slist_free_all(list); }

CURLcode CCurl_setopt_long(CURL *handle, CURLoption option, long value) { return api.easy_setopt(handle, option, value); }
CURLcode CCurl_setopt_offset(CURL *handle, CURLoption option, curl_off_t value) { return api.easy_setopt(handle, option, value); }
CURLcode CCurl_setopt_string(CURL *handle, CURLoption option, const char *value) { return api.easy_setopt(handle, option, value); }
CURLcode CCurl_setopt_pointer(CURL *handle, CURLoption option, void *value) { return api.easy_setopt(handle, option, value); }
CURLcode CCurl_setopt_headers(CURL *handle, struct curl_slist *headers) { return api.easy_setopt(handle, CURLOPT_HTTPHEADER, headers); }
CURLcode CCurl_setopt_callback(CURL *handle, CURLoption option, CCurl_data_callback callback) { return api.easy_setopt(handle, option, callback); }
CURLcode CCurl_setopt_progress(CURL *handle, CCurl_progress_callback callback) { return api.easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, callback); }
CURLcode CCurl_getinfo_long(CURL *handle, CURLINFO info, long *value) { return api.easy_getinfo(handle, info, value); }
CURLcode CCurl_getinfo_double(CURL *handle, CURLINFO info, double *value) { return api.easy_getinfo(handle, info, value); }

// Sockets libcurl opens for transfers are close-on-exec from the start, so that a
// program the runner starts at the same moment never inherits one.
static curl_socket_t ccurl_open_cloexec(void *context, curlsocktype purpose, struct curl_sockaddr *address) {
  (void)context;
  (void)purpose;
  return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

CURLcode CCurl_setopt_cloexec_sockets(CURL *handle) {
  return api.easy_setopt(handle, CURLOPT_OPENSOCKETFUNCTION, ccurl_open_cloexec);
}

const char *CCurl_version(void) {
  curl_version_info_data *info = api.version_info(CURLVERSION_NOW);
  return info && info->version ? info->version : "unknown";
}
