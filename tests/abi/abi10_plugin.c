/*
 * abi10:// — a complete model store in plain C99, built against
 * abi_v1_0.h, the first published plugin ABI (1.0), and never against the
 * current header. It proves that every later 1.x host loads a 1.0 plugin:
 * the ABI tests load it with the current core and run the conformance suite
 * on it.
 *
 * USAGE
 *
 *   abi10://<name>   the model called <name> (any non-empty text) in a
 *                    process-wide table.
 *   save    copies the artifacts JSON and the weight bytes; replaces a model
 *           of that name at once (the old one or the new one, never a mix).
 *   load    hands back the saved JSON (flat "weightSpecs") and one buffer
 *           holding a copy of the weight bytes.
 *   list    abi10:// lists every model; abi10://<prefix> the model <prefix>
 *           and those under "<prefix>/".
 *   remove  forgets the model.
 *   No options: anything but {} is INVALID_ARGUMENT.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "abi_v1_0.h"

#define ABI10_EXPORT __attribute__((visibility("default")))
#define ABI10_PREFIX "abi10://"
#define ABI10_PREFIX_LEN 8

static const stowage_host_api* g_host;

/* ---- helpers --------------------------------------------------------------- */

static void fail(stowage_status* st, int32_t code, const char* msg) {
  g_host->status_set(st, code, 0, msg, strlen(msg));
}

static char* copy_bytes(const char* src, size_t len) {
  char* out = (char*)malloc(len + 1);
  if (out == NULL) return NULL;
  if (len > 0) memcpy(out, src, len);
  out[len] = '\0';
  return out;
}

/* 0 to go on; else the status is set (CANCELLED or DEADLINE_EXCEEDED). */
static int stopped(const stowage_call* call, stowage_status* st) {
  struct timespec now;
  if (call == NULL) return 0;
  if (call->is_cancelled != NULL && call->is_cancelled(call->host_context)) {
    fail(st, STOWAGE_CANCELLED, "abi10: the call was cancelled");
    return 1;
  }
  if (call->deadline_unix_ms != 0) {
    clock_gettime(CLOCK_REALTIME, &now);
    if ((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 >= call->deadline_unix_ms) {
      fail(st, STOWAGE_DEADLINE_EXCEEDED, "abi10: the call passed its deadline");
      return 1;
    }
  }
  return 0;
}

static void progress(const stowage_call* call, uint64_t done, uint64_t total) {
  if (call != NULL && call->progress != NULL) call->progress(call->host_context, done, total);
}

/* ---- a JSON scanner: the byte length of one top-level value ---------------- */

static size_t skip_space(const char* s, size_t n, size_t i) {
  while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  return i;
}

/* Returns the index after the value starting at i, or n on malformed text. */
static size_t skip_value(const char* s, size_t n, size_t i) {
  int depth = 0;
  int in_string = 0;
  for (; i < n; ++i) {
    char c = s[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = 0;
        if (depth == 0) return i + 1;
      }
    } else if (c == '"') {
      in_string = 1;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (depth == 0) return i; /* the end of the enclosing object */
      if (--depth == 0) return i + 1;
    } else if (depth == 0 && (c == ',' || c == ' ' || c == '\n' || c == '\r' || c == '\t')) {
      return i;
    }
  }
  return n;
}

/* The length of the value of top-level key `key`, 0 when absent. */
static uint64_t value_length(const char* s, size_t n, const char* key) {
  size_t klen = strlen(key);
  size_t i = skip_space(s, n, 0);
  if (i >= n || s[i] != '{') return 0;
  ++i;
  while (i < n) {
    size_t name_start, name_end, value_start, value_end;
    i = skip_space(s, n, i);
    if (i >= n || s[i] != '"') return 0;
    name_start = i + 1;
    name_end = skip_value(s, n, i) - 1;
    i = skip_space(s, n, name_end + 1);
    if (i >= n || s[i] != ':') return 0;
    value_start = skip_space(s, n, i + 1);
    value_end = skip_value(s, n, value_start);
    if (name_end - name_start == klen && memcmp(s + name_start, key, klen) == 0) {
      return value_end - value_start;
    }
    i = skip_space(s, n, value_end);
    if (i < n && s[i] == ',') ++i;
  }
  return 0;
}

/* ---- the store ------------------------------------------------------------- */

typedef struct model {
  char* name;
  size_t name_len;
  char* json;
  size_t json_len;
  uint8_t* weights; /* NULL when the artifacts had no weight data */
  uint64_t weight_len;
  int has_weights;
  char info[256];
  struct model* next;
} model;

static pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;
static model* g_models;

static void free_model(model* m) {
  if (m == NULL) return;
  free(m->name);
  free(m->json);
  free(m->weights);
  free(m);
}

/* The slot holding `name`. REQUIRES: g_mutex held. */
static model** find(const char* name, size_t len) {
  model** p = &g_models;
  while (*p != NULL && !((*p)->name_len == len && memcmp((*p)->name, name, len) == 0)) {
    p = &(*p)->next;
  }
  return p;
}

/* ---- operations ------------------------------------------------------------ */

struct stowage_handler {
  char* name;
  size_t name_len;
};

static int named(const stowage_handler* h, stowage_status* st) {
  if (h->name_len > 0) return 1;
  fail(st, STOWAGE_INVALID_ARGUMENT, "abi10: the URL names no model; use abi10://<name>");
  return 0;
}

static void abi10_open(const char* url, size_t url_len, const char* options, size_t options_len,
                       stowage_handler** out, stowage_status* st) {
  stowage_handler* h;
  size_t i = skip_space(options, options_len, 0);
  if (i >= options_len || options[i] != '{' ||
      skip_space(options, options_len, i + 1) >= options_len ||
      options[skip_space(options, options_len, i + 1)] != '}') {
    fail(st, STOWAGE_INVALID_ARGUMENT, "abi10: this scheme takes no options");
    return;
  }
  if (url_len < ABI10_PREFIX_LEN || memcmp(url, ABI10_PREFIX, ABI10_PREFIX_LEN) != 0) {
    fail(st, STOWAGE_INVALID_ARGUMENT, "abi10: not an abi10:// URL");
    return;
  }
  h = (stowage_handler*)malloc(sizeof *h);
  if (h != NULL) {
    h->name_len = url_len - ABI10_PREFIX_LEN;
    h->name = copy_bytes(url + ABI10_PREFIX_LEN, h->name_len);
  }
  if (h == NULL || h->name == NULL) {
    free(h);
    fail(st, STOWAGE_RESOURCE_EXHAUSTED, "abi10: out of memory");
    return;
  }
  *out = h;
}

static void abi10_close(stowage_handler* h) {
  free(h->name);
  free(h);
}

static void abi10_save(stowage_handler* h, const stowage_artifacts* a, const stowage_call* call,
                       stowage_sink* result, stowage_status* st) {
  model* m;
  model* old;
  model** slot;
  uint64_t i, at = 0;
  char date[32];
  time_t now = time(NULL);
  (void)result;
  if (!named(h, st) || stopped(call, st)) return;
  progress(call, 0, a->weight_bytes);
  m = (model*)calloc(1, sizeof *m);
  if (m == NULL) goto oom;
  m->name = copy_bytes(h->name, h->name_len);
  m->name_len = h->name_len;
  m->json = copy_bytes(a->json, (size_t)a->json_size);
  m->json_len = (size_t)a->json_size;
  m->has_weights = a->has_weight_data != 0;
  m->weight_len = a->weight_bytes;
  m->weights = (uint8_t*)malloc(a->weight_bytes > 0 ? (size_t)a->weight_bytes : 1);
  if (m->name == NULL || m->json == NULL || m->weights == NULL) goto oom;
  for (i = 0; i < a->buffer_count; ++i) {
    if (at + a->buffers[i].size > a->weight_bytes) {
      fail(st, STOWAGE_INVALID_ARGUMENT, "abi10: the buffers hold more than weight_bytes");
      free_model(m);
      return;
    }
    if (a->buffers[i].size > 0) memcpy(m->weights + at, a->buffers[i].data, a->buffers[i].size);
    at += a->buffers[i].size;
  }
  strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S.000Z", gmtime(&now));
  snprintf(m->info, sizeof m->info,
           "{\"dateSaved\":\"%s\",\"modelTopologyType\":\"JSON\",\"modelTopologyBytes\":%llu,"
           "\"weightSpecsBytes\":%llu,\"weightDataBytes\":%llu}",
           date, (unsigned long long)value_length(m->json, m->json_len, "modelTopology"),
           (unsigned long long)value_length(m->json, m->json_len, "weightSpecs"),
           (unsigned long long)m->weight_len);
  if (stopped(call, st)) { /* the last moment a stop leaves nothing behind */
    free_model(m);
    return;
  }
  pthread_mutex_lock(&g_mutex);
  slot = find(m->name, m->name_len);
  old = *slot;
  m->next = old != NULL ? old->next : NULL;
  *slot = m;
  pthread_mutex_unlock(&g_mutex);
  free_model(old);
  progress(call, a->weight_bytes, a->weight_bytes);
  return;
oom:
  free_model(m);
  fail(st, STOWAGE_RESOURCE_EXHAUSTED, "abi10: out of memory");
}

static void release_copy(stowage_buffer* self) {
  free((void*)self->private_data);
  self->private_data = NULL;
  self->release = NULL;
}

static void abi10_load(stowage_handler* h, const stowage_call* call, stowage_sink* out,
                       stowage_status* st) {
  model* m;
  stowage_buffer buf;
  uint8_t* bytes = NULL;
  if (!named(h, st) || stopped(call, st)) return;
  pthread_mutex_lock(&g_mutex);
  m = *find(h->name, h->name_len);
  if (m == NULL) {
    pthread_mutex_unlock(&g_mutex);
    fail(st, STOWAGE_NOT_FOUND, "abi10: no model at that URL");
    return;
  }
  if (m->weight_len > 0) {
    bytes = (uint8_t*)malloc((size_t)m->weight_len);
    if (bytes == NULL) {
      pthread_mutex_unlock(&g_mutex);
      fail(st, STOWAGE_RESOURCE_EXHAUSTED, "abi10: out of memory");
      return;
    }
    memcpy(bytes, m->weights, (size_t)m->weight_len);
  }
  g_host->sink_set_text(out, m->json, m->json_len);
  memset(&buf, 0, sizeof buf);
  buf.data = bytes;
  buf.size = m->weight_len;
  buf.release = release_copy;
  buf.private_data = bytes;
  buf.label = NULL;
  pthread_mutex_unlock(&g_mutex);
  if (bytes != NULL) g_host->sink_add_buffer(out, &buf);
  progress(call, buf.size, buf.size);
}

static void abi10_list(stowage_handler* h, const stowage_call* call, stowage_sink* out,
                       stowage_status* st) {
  model* m;
  char* url;
  if (stopped(call, st)) return;
  pthread_mutex_lock(&g_mutex);
  for (m = g_models; m != NULL; m = m->next) {
    int at = m->name_len == h->name_len && memcmp(m->name, h->name, h->name_len) == 0;
    int under = h->name_len == 0 ||
                (m->name_len > h->name_len && memcmp(m->name, h->name, h->name_len) == 0 &&
                 (h->name[h->name_len - 1] == '/' || m->name[h->name_len] == '/'));
    if (!at && !under) continue;
    url = (char*)malloc(ABI10_PREFIX_LEN + m->name_len + 1);
    if (url == NULL) {
      pthread_mutex_unlock(&g_mutex);
      fail(st, STOWAGE_RESOURCE_EXHAUSTED, "abi10: out of memory");
      return;
    }
    memcpy(url, ABI10_PREFIX, ABI10_PREFIX_LEN);
    memcpy(url + ABI10_PREFIX_LEN, m->name, m->name_len);
    g_host->sink_add_model(out, url, ABI10_PREFIX_LEN + m->name_len, m->info, strlen(m->info));
    free(url);
  }
  pthread_mutex_unlock(&g_mutex);
}

static void abi10_remove(stowage_handler* h, const stowage_call* call, stowage_sink* out,
                         stowage_status* st) {
  model** slot;
  model* m;
  if (!named(h, st) || stopped(call, st)) return;
  pthread_mutex_lock(&g_mutex);
  slot = find(h->name, h->name_len);
  m = *slot;
  if (m != NULL) *slot = m->next;
  pthread_mutex_unlock(&g_mutex);
  if (m == NULL) {
    fail(st, STOWAGE_NOT_FOUND, "abi10: no model at that URL");
    return;
  }
  g_host->sink_set_text(out, m->info, strlen(m->info));
  free_model(m);
}

/* ---- the table, and the entry point last ----------------------------------- */

static const stowage_ops g_ops = {
    sizeof(stowage_ops), /* struct_size */
    0,                   /* reserved0 */
    abi10_open,          /* open */
    abi10_close,         /* close */
    abi10_save,          /* save */
    abi10_load,          /* load */
    abi10_list,          /* list */
    abi10_remove,        /* remove */
};

static const char* const g_schemes[] = {"abi10"};

static const stowage_plugin_desc g_desc = {
    sizeof(stowage_plugin_desc), /* struct_size */
    STOWAGE_ABI_MAJOR,           /* abi_major */
    STOWAGE_ABI_MINOR,           /* abi_minor */
    1,                           /* scheme_count */
    "abi10",                     /* name */
    "1.0.0",                     /* version */
    g_schemes,                   /* schemes */
    STOWAGE_CAP_LOAD | STOWAGE_CAP_SAVE | STOWAGE_CAP_LIST | STOWAGE_CAP_REMOVE |
        STOWAGE_CAP_ATOMIC_SAVE, /* capabilities */
    &g_ops,                      /* ops */
};

ABI10_EXPORT const stowage_plugin_desc* stowage_plugin_entry_v1(const stowage_host_api* host) {
  if (host == NULL || host->abi_major != STOWAGE_ABI_MAJOR) return NULL;
  g_host = host;
  return &g_desc;
}
