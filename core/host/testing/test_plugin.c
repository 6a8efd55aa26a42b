/*
 * A minimal plugin in plain C99 against abi.h, compiled once per test plugin.
 * By default it is well behaved: it serves TP_SCHEME with load (a model whose
 * topology names the plugin and the URL, no weights) and list (nothing).
 * Each TP_* macro breaks one rule of the ABI so the host's refusal can be
 * checked:
 *   TP_NO_ENTRY       exports another symbol instead of the entry point
 *   TP_ABI_MAJOR=n    declares another ABI major version
 *   TP_LIAR           declares STOWAGE_CAP_LIST without a list function
 *   TP_NULL_DESC      the entry returns NULL
 *   TP_SMALL_STRUCT   a descriptor struct_size too small for ABI 1.0
 *   TP_DESC_NAME="x"  a descriptor name that disagrees with the manifest
 *   TP_EXTRA_SCHEME   a descriptor with one scheme more than the manifest
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stowage/abi.h"

#define TP_EXPORT __attribute__((visibility("default")))

#ifndef TP_ABI_MAJOR
#define TP_ABI_MAJOR STOWAGE_ABI_MAJOR
#endif
#ifndef TP_DESC_NAME
#define TP_DESC_NAME TP_NAME
#endif

static const stowage_host_api* g_host;

struct stowage_handler {
  char* url;
};

static void tp_open(const char* url, size_t url_len, const char* options_json, size_t options_len,
                    stowage_handler** out, stowage_status* st) {
  stowage_handler* h;
  /* Only "{}" is accepted: unknown options are an error. */
  if (options_len != 2 || memcmp(options_json, "{}", 2) != 0) {
    static const char msg[] = TP_NAME ": this plugin takes no options";
    g_host->status_set(st, STOWAGE_INVALID_ARGUMENT, 0, msg, sizeof msg - 1);
    return;
  }
  h = (stowage_handler*)malloc(sizeof *h);
  if (h == NULL) {
    g_host->status_set(st, STOWAGE_RESOURCE_EXHAUSTED, 0, "out of memory", 13);
    return;
  }
  h->url = (char*)malloc(url_len + 1);
  if (h->url == NULL) {
    free(h);
    g_host->status_set(st, STOWAGE_RESOURCE_EXHAUSTED, 0, "out of memory", 13);
    return;
  }
  memcpy(h->url, url, url_len);
  h->url[url_len] = '\0';
  *out = h;
}

static void tp_close(stowage_handler* h) {
  free(h->url);
  free(h);
}

static void tp_load(stowage_handler* h, const stowage_call* call, stowage_sink* out,
                    stowage_status* st) {
  char json[1024];
  int n;
  (void)call;
  (void)st;
  /* The test URLs hold no characters that need escaping. */
  n = snprintf(json, sizeof json,
               "{\"modelTopology\":{\"plugin\":\"%s\",\"url\":\"%s\"},\"weightSpecs\":[]}",
               TP_DESC_NAME, h->url);
  g_host->sink_set_text(out, json, (size_t)n);
}

#ifndef TP_LIAR
static void tp_list(stowage_handler* h, const stowage_call* call, stowage_sink* out,
                    stowage_status* st) {
  (void)h;
  (void)call;
  (void)out;
  (void)st;
}
#endif

static const stowage_ops kOps = {sizeof(stowage_ops),
                                 0,
                                 tp_open,
                                 tp_close,
                                 NULL,
                                 tp_load,
#ifdef TP_LIAR
                                 NULL,
#else
                                 tp_list,
#endif
                                 NULL,
                                 NULL};

#ifdef TP_EXTRA_SCHEME
static const char* const kSchemes[] = {TP_SCHEME, TP_EXTRA_SCHEME};
#else
static const char* const kSchemes[] = {TP_SCHEME};
#endif

static const stowage_plugin_desc kDesc = {
#ifdef TP_SMALL_STRUCT
    (uint32_t)offsetof(stowage_plugin_desc, capabilities),
#else
    sizeof(stowage_plugin_desc),
#endif
    TP_ABI_MAJOR,
    STOWAGE_ABI_MINOR,
    (uint32_t)(sizeof kSchemes / sizeof kSchemes[0]),
    TP_DESC_NAME,
    "1.2.3",
    kSchemes,
    STOWAGE_CAP_LOAD | STOWAGE_CAP_LIST,
    &kOps,
    NULL};

#ifdef TP_NO_ENTRY
/* Looks like an entry point under the wrong name (an older ABI, say). */
TP_EXPORT const stowage_plugin_desc* stowage_plugin_entry_v0(const stowage_host_api* host) {
  g_host = host;
  return &kDesc;
}
#else
TP_EXPORT const stowage_plugin_desc* stowage_plugin_entry_v1(const stowage_host_api* host) {
  g_host = host;
#ifdef TP_NULL_DESC
  {
    static const char msg[] = TP_NAME ": refusing to run (test plugin)";
    host->log(2, msg, sizeof msg - 1);
  }
  (void)kDesc;
  return NULL;
#else
  return &kDesc;
#endif
}
#endif
