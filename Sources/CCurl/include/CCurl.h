#ifndef CCURL_H
#define CCURL_H
// libcurl, loaded on first use. Two reasons for this target:
// - curl_easy_setopt and curl_easy_getinfo are variadic and do not import into
//   Swift: the typed wrappers below call them;
// - libcurl pulls in some thirty shared libraries (TLS, Kerberos, LDAP, ...) that
//   cost start-up time and memory in every run, so it is opened with dlopen when
//   the first HTTP transfer needs it rather than linked.
// Types and constants come from curl's own header.
#include <curl/curl.h>

typedef size_t (*CCurl_data_callback)(char *buffer, size_t size, size_t count, void *context);
typedef int (*CCurl_progress_callback)(void *context, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow);

/// Loads libcurl (once, thread-safe) and initialises it. Returns 0, or -1 with a
/// message (libcurl missing or too old).
int CCurl_load(char *message, size_t message_len);

// Each wrapper requires a successful CCurl_load first.
CURL *CCurl_easy_init(void);
void CCurl_easy_cleanup(CURL *handle);
void CCurl_easy_reset(CURL *handle);
CURLcode CCurl_easy_perform(CURL *handle);
const char *CCurl_easy_strerror(CURLcode code);
struct curl_slist *CCurl_slist_append(struct curl_slist *list, const char *value);
void CCurl_slist_free_all(struct curl_slist *list);

CURLcode CCurl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode CCurl_setopt_offset(CURL *handle, CURLoption option, curl_off_t value);
CURLcode CCurl_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode CCurl_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode CCurl_setopt_headers(CURL *handle, struct curl_slist *headers);
CURLcode CCurl_setopt_callback(CURL *handle, CURLoption option, CCurl_data_callback callback);
CURLcode CCurl_setopt_progress(CURL *handle, CCurl_progress_callback callback);
/// Makes the sockets of transfers on `handle` close-on-exec (CURLOPT_OPENSOCKETFUNCTION).
CURLcode CCurl_setopt_cloexec_sockets(CURL *handle);
CURLcode CCurl_getinfo_long(CURL *handle, CURLINFO info, long *value);
CURLcode CCurl_getinfo_double(CURL *handle, CURLINFO info, double *value);
/// The loaded libcurl's version ("7.88.1"), from curl_version_info.
const char *CCurl_version(void);
#endif
