/*
 * The conformance suite's shim: a plugin library that stands in front of the
 * plugin under test (or of nobody) to test how a registry meets it.
 *
 * USAGE
 *
 *   The suite copies this library to a temporary file F and writes F.conf,
 *   lines of key=value:
 *     mode=older-minor  library=<plugin library>
 *         Loads the plugin, calls its entry with the host's services as ABI
 *         1.0 defines them (struct_size clamped, the 1.1 services NULL, so
 *         it uses only what a plugin of ABI 1.0 can), and returns its
 *         descriptor as a plugin of ABI 1.0 would: abi_minor 0, the
 *         descriptor and ops table clamped to their ABI 1.0 sizes, and only
 *         the capability bits ABI 1.0 defines.
 *     mode=other-major  library=<plugin library>
 *         The same descriptor claiming ABI major STOWAGE_ABI_MAJOR + 1.
 *     mode=decoy  scheme=<scheme>
 *         A plugin named "conformance-decoy" serving <scheme> whose load
 *         always fails; it exists to collide with the plugin under test.
 *   In the first two modes it writes F.report: the plugin's own descriptor
 *   (struct sizes, ABI version, capabilities, and an ABI 1.1 plugin's
 *   per-scheme capabilities as scheme_capabilities.<scheme>=<bits>), for the
 *   suite to check.
 *
 *   The shim is run by one registry per process, never alongside a registry
 *   that loaded the plugin itself: the plugin's entry runs once per process.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stowage/abi.h"

#define SHIM_EXPORT __attribute__((visibility("default")))

/* ABI 1.0's sizes: what a plugin of the first minor version hands out. */
#define SHIM_DESC_SIZE_1_0 ((uint32_t)(offsetof(stowage_plugin_desc, ops) + sizeof(void*)))
#define SHIM_OPS_SIZE_1_0 ((uint32_t)(offsetof(stowage_ops, remove) + sizeof(void*)))
/* ABI 1.1's descriptor, which ends with the per-scheme capabilities. */
#define SHIM_DESC_SIZE_1_1 \
  ((uint32_t)(offsetof(stowage_plugin_desc, scheme_capabilities) + sizeof(void*)))
/* The capability bits ABI 1.0 defines (load ... single_threaded); a 1.0
 * plugin knows no other, and the operations of later bits are cut off with
 * the ops table's tail. */
#define SHIM_CAPS_1_0 ((STOWAGE_CAP_SINGLE_THREADED << 1) - 1)

static const stowage_host_api* g_host;
static stowage_host_api g_host_1_0; /* older-minor: the services of ABI 1.0 */
static char g_mode[64];
static char g_library[4096];
static char g_scheme[256];
static stowage_plugin_desc g_desc;
static stowage_ops g_ops;
static const char* g_schemes[1];

static void shim_log(const char* msg) {
  if (g_host != NULL && g_host->log != NULL) g_host->log(2, msg, strlen(msg));
}

/* Reads F.conf beside this library into the globals; 0 on success. */
static int shim_read_conf(char* self, size_t self_size) {
  Dl_info info;
  char path[4200];
  char line[4200];
  FILE* f;
  if (dladdr(g_mode, &info) == 0 || info.dli_fname == NULL) return -1;
  snprintf(self, self_size, "%s", info.dli_fname);
  snprintf(path, sizeof path, "%s.conf", self);
  f = fopen(path, "r");
  if (f == NULL) return -1;
  while (fgets(line, sizeof line, f) != NULL) {
    char* eq = strchr(line, '=');
    char* end = line + strcspn(line, "\r\n");
    *end = '\0';
    if (eq == NULL) continue;
    *eq = '\0';
    if (strcmp(line, "mode") == 0) snprintf(g_mode, sizeof g_mode, "%s", eq + 1);
    if (strcmp(line, "library") == 0) snprintf(g_library, sizeof g_library, "%s", eq + 1);
    if (strcmp(line, "scheme") == 0) snprintf(g_scheme, sizeof g_scheme, "%s", eq + 1);
  }
  fclose(f);
  return 0;
}

/* ---- decoy ---------------------------------------------------------------- */

struct stowage_handler {
  int unused;
};

static void decoy_open(const char* url, size_t url_len, const char* options_json,
                       size_t options_len, stowage_handler** out, stowage_status* st) {
  static stowage_handler handler;
  (void)url;
  (void)url_len;
  (void)options_json;
  (void)options_len;
  (void)st;
  *out = &handler;
}

static void decoy_close(stowage_handler* handler) { (void)handler; }

static void decoy_load(stowage_handler* handler, const stowage_call* call, stowage_sink* out,
                       stowage_status* st) {
  static const char msg[] = "the conformance decoy plugin served this call";
  (void)handler;
  (void)call;
  (void)out;
  g_host->status_set(st, STOWAGE_INTERNAL, 0, msg, sizeof msg - 1);
}

static const stowage_plugin_desc* decoy(void) {
  g_schemes[0] = g_scheme;
  g_ops.struct_size = sizeof g_ops;
  g_ops.open = decoy_open;
  g_ops.close = decoy_close;
  g_ops.load = decoy_load;
  g_desc.struct_size = sizeof g_desc;
  g_desc.abi_major = STOWAGE_ABI_MAJOR;
  g_desc.abi_minor = STOWAGE_ABI_MINOR;
  g_desc.scheme_count = 1;
  g_desc.name = "conformance-decoy";
  g_desc.version = "1.0.0";
  g_desc.schemes = g_schemes;
  g_desc.capabilities = STOWAGE_CAP_LOAD;
  g_desc.ops = &g_ops;
  return &g_desc;
}

/* ---- wrapping the plugin under test -------------------------------------- */

static const stowage_plugin_desc* wrap(const char* self) {
  char path[4200];
  void* lib;
  stowage_entry_fn entry;
  const stowage_plugin_desc* real;
  FILE* report;
  lib = dlopen(g_library, RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    shim_log(dlerror());
    return NULL;
  }
  *(void**)(&entry) = dlsym(lib, STOWAGE_ENTRY_SYMBOL);
  if (entry == NULL) {
    shim_log("the plugin under test has no entry symbol");
    return NULL;
  }
  if (strcmp(g_mode, "older-minor") == 0) {
    /* A plugin that reports ABI 1.0 must find only 1.0's services: with
     * 1.1's it would act on the 1.1 bits the host no longer sees (a
     * streaming load would put buffers its scheme no longer declares). */
    memcpy(&g_host_1_0, g_host, sizeof g_host_1_0);
    g_host_1_0.struct_size = (uint32_t)offsetof(stowage_host_api, sink_put_buffer);
    g_host_1_0.abi_minor = 0;
    g_host_1_0.sink_put_buffer = NULL;
    real = entry(&g_host_1_0);
  } else {
    real = entry(g_host);
  }
  snprintf(path, sizeof path, "%s.report", self);
  report = fopen(path, "w");
  if (report != NULL) {
    if (real == NULL) {
      fprintf(report, "descriptor=null\n");
    } else {
      fprintf(report, "desc_size=%u\nabi_major=%u\nabi_minor=%u\ncapabilities=%llu\n",
              real->struct_size, real->abi_major, real->abi_minor,
              (unsigned long long)real->capabilities);
      if (real->struct_size >= SHIM_DESC_SIZE_1_0 && real->ops != NULL) {
        fprintf(report, "ops_size=%u\n", real->ops->struct_size);
      }
      /* What each scheme really declares, which the clamped table can no
       * longer say: the probe exercises only those operations. */
      if (real->abi_minor >= 1 && real->struct_size >= SHIM_DESC_SIZE_1_1 &&
          real->scheme_capabilities != NULL && real->schemes != NULL) {
        uint32_t i;
        for (i = 0; i < real->scheme_count; ++i) {
          fprintf(report, "scheme_capabilities.%s=%llu\n", real->schemes[i],
                  (unsigned long long)real->scheme_capabilities[i]);
        }
      }
    }
    fclose(report);
  }
  if (real == NULL || real->struct_size < SHIM_DESC_SIZE_1_0 || real->ops == NULL ||
      real->ops->struct_size < SHIM_OPS_SIZE_1_0) {
    return real; /* the registry judges it as it is */
  }
  memcpy(&g_desc, real, SHIM_DESC_SIZE_1_0);
  memcpy(&g_ops, real->ops, SHIM_OPS_SIZE_1_0);
  g_desc.struct_size = SHIM_DESC_SIZE_1_0;
  g_ops.struct_size = SHIM_OPS_SIZE_1_0;
  g_desc.ops = &g_ops;
  if (strcmp(g_mode, "other-major") == 0) {
    g_desc.abi_major = STOWAGE_ABI_MAJOR + 1;
  } else {
    g_desc.abi_minor = 0;
    g_desc.capabilities &= SHIM_CAPS_1_0;
  }
  return &g_desc;
}

SHIM_EXPORT const stowage_plugin_desc* stowage_plugin_entry_v1(const stowage_host_api* host) {
  char self[4096];
  g_host = host;
  if (shim_read_conf(self, sizeof self) != 0) {
    shim_log("conformance shim: cannot read its .conf file");
    return NULL;
  }
  if (strcmp(g_mode, "decoy") == 0) return decoy();
  if (strcmp(g_mode, "older-minor") == 0 || strcmp(g_mode, "other-major") == 0) return wrap(self);
  shim_log("conformance shim: unknown mode");
  return NULL;
}
