/*
 * stowage plugin ABI, version 1.5.
 *
 * A plugin is a shared library that exports exactly one C symbol,
 * STOWAGE_ENTRY_SYMBOL, of type stowage_entry_fn. It serves one or more URL
 * schemes with the operations of a TF.js IOHandler (save, load) and, when it
 * declares them, model-store operations (list, remove).
 *
 * Plain C99 with fixed-width types: no C++ type, exception or allocator
 * crosses this boundary, so a plugin built by another compiler, standard
 * library or language loads into any 1.x host.
 *
 * Rules that hold for every struct and call below:
 *  - Versioning: every struct starts with struct_size. Fields are only ever
 *    appended. The host copies plugin tables clamped to the smaller size and
 *    reads missing tail fields as zero/NULL. A descriptor with another
 *    abi_major is refused; an older abi_minor is accepted.
 *  - Strings passed in are UTF-8, borrowed for the duration of the call, and
 *    come with an explicit length (they are also NUL-terminated). A plugin
 *    copies what it keeps.
 *  - Outputs of variable size go through host-owned sinks (host->sink_*), so
 *    nothing is ever freed across the boundary.
 *  - Errors: every operation gets a host-owned stowage_status. A plugin that
 *    does not touch it has succeeded. A failing plugin calls
 *    host->status_set once; the host copies the message.
 *  - Sizes and offsets are 64-bit.
 *  - Threading: the entry function is called once, under the host's loader
 *    lock. Handlers may be used from several threads at once unless the
 *    plugin declares STOWAGE_CAP_SINGLE_THREADED, in which case the host
 *    serialises all calls into that plugin. Buffer release callbacks may run
 *    on any thread.
 *  - Lifetime: a loaded plugin is never unloaded during the process.
 */
#ifndef STOWAGE_ABI_H_
#define STOWAGE_ABI_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define STOWAGE_ABI_MAJOR 1u
#define STOWAGE_ABI_MINOR 5u

/* The only symbol a plugin exports. The major version is part of the name. */
#define STOWAGE_ENTRY_SYMBOL "stowage_plugin_entry_v1"

/* ---- Status ------------------------------------------------------------ */

/* Closed set; the values are frozen. An unknown value from a plugin is
 * reported by the host as STOWAGE_INTERNAL with the number kept in the text. */
typedef enum stowage_code {
  STOWAGE_OK = 0,
  STOWAGE_NOT_FOUND = 1,          /* no model (or file) at that URL */
  STOWAGE_INVALID_ARGUMENT = 2,   /* bad URL, bad option, bad artifacts */
  STOWAGE_ALREADY_EXISTS = 3,     /* the destination exists and may not be replaced */
  STOWAGE_PERMISSION_DENIED = 4,  /* the store refused access */
  STOWAGE_UNAVAILABLE = 5,        /* transient: connection lost, store busy */
  STOWAGE_DATA_LOSS = 6,          /* stored bytes are missing, truncated or corrupt */
  STOWAGE_RESOURCE_EXHAUSTED = 7, /* quota, disk full, size limit */
  STOWAGE_CANCELLED = 8,          /* the host's cancellation callback said stop */
  STOWAGE_DEADLINE_EXCEEDED = 9,  /* the call's deadline passed */
  STOWAGE_UNIMPLEMENTED = 10,     /* the operation is not supported by this scheme */
  STOWAGE_INTERNAL = 11           /* a bug or an unexpected failure in the plugin */
} stowage_code;

/* Host-owned; one per call. Set through host->status_set. */
typedef struct stowage_status stowage_status;

/* ---- Buffers ----------------------------------------------------------- */

/*
 * A run of bytes with an owner (the Arrow C Data Interface pattern).
 * Ownership moves by copying the struct and setting the source's release to
 * NULL. release == NULL means there is nothing to release. release frees
 * whatever private_data holds (an mmap region, a reference count, a heap
 * block) and sets self->release to NULL; it may be called on any thread.
 * label names where the bytes came from (a file path or URL, for error
 * messages); it is owned with the buffer and may be NULL.
 */
typedef struct stowage_buffer {
  const uint8_t* data;
  uint64_t size;
  void (*release)(struct stowage_buffer* self);
  void* private_data;
  const char* label;
} stowage_buffer;

/* ---- Calls ------------------------------------------------------------- */

/* Host-owned output collector; what it collects depends on the operation. */
typedef struct stowage_sink stowage_sink;

/*
 * Per-call context, host-owned, valid for the duration of one call.
 * Callbacks are never NULL; they may be called from any thread the plugin
 * uses for this call.
 */
typedef struct stowage_call {
  uint32_t struct_size;
  uint32_t reserved0;
  /* Absolute deadline in Unix milliseconds; 0 means none. A plugin that
   * passes it fails with STOWAGE_DEADLINE_EXCEEDED. */
  int64_t deadline_unix_ms;
  void* host_context; /* passed back to every callback below */
  /* Non-zero once the caller wants the call to stop; the plugin then fails
   * with STOWAGE_CANCELLED and leaves no partial model behind. */
  int32_t (*is_cancelled)(void* host_context);
  /* Byte-level progress of this call. total may grow while a load learns
   * sizes; the last report of a successful call has done == total. */
  void (*progress)(void* host_context, uint64_t done, uint64_t total);
  /* TF.js's weightUrlConverter: maps a path from the weights manifest to
   * the URL to fetch, written to out with host->sink_set_text. out is a text
   * sink from host->sink_new_text; read it with host->sink_get_text. Returns
   * 0 when the host has no converter (use the path as it is), 1 when out
   * holds the converted URL, -1 on failure with st set. */
  int32_t (*convert_weight_url)(void* host_context, const char* path, size_t path_len,
                                stowage_sink* out, stowage_status* st);
  /* ABI 1.2 additions: read them only when struct_size covers them. */
  /* STOWAGE_CALL_* bits saying how the caller wants this call done. A
   * plugin ignores bits it does not know; a host sets only these. */
  uint64_t flags;
  /* ABI 1.3 additions: read them only when struct_size covers them. */
  /* stat only (NULL with size 0 on every other call, and on a stat whose
   * caller holds no copy): the version token an earlier stat of this
   * handler's URL returned, with the same STOWAGE_CALL_STAT_SHALLOW bit,
   * for a copy the caller keeps (a cache revalidating its snapshot);
   * known_version_size bytes, NUL-terminated. See ops->stat for the answer
   * "unchanged" it allows. A plugin may ignore it and stat in full. */
  const char* known_version;
  uint64_t known_version_size;
} stowage_call;

/*
 * stat: the caller needs model.json and a version token cheaply (a cache
 * revalidating). The plugin may read model.json alone (one request), and
 * then its version token covers model.json's bytes and the store's
 * validators of model.json only, and info's weightDataBytes is what the
 * manifest's specs need. A plugin may ignore the bit and stat in full.
 * A shallow token of a store whose validators firm up after a write (an
 * http Last-Modified within a second of the answer's Date) may change once
 * for the same model.json; a stat given the older token as known_version
 * then answers "unchanged" with the newer one (ops->stat).
 */
#define STOWAGE_CALL_STAT_SHALLOW (1ull << 0)
/*
 * load through nested_load: the host skips its check of the weight files
 * against the SHA-256 digests model.json records (the caller checks them
 * itself, or trusts the store). The byte-count checks still run.
 */
#define STOWAGE_CALL_SKIP_DIGESTS (1ull << 1)

/*
 * Artifacts handed to save. Host-owned, borrowed for the call.
 * json: a JSON object with the TF.js ModelArtifacts fields except the weight
 *   bytes, in TF.js's artifact key order: modelTopology, format, generatedBy,
 *   convertedBy, trainingConfig, userDefinedMetadata, signature,
 *   modelInitializer, initializerSignature, weightSpecs (the flat list).
 *   Absent fields are left out; numbers and strings are already in
 *   JSON.stringify form.
 * buffers: the weight bytes; their concatenation is TF.js's weightData and
 *   its length is weight_bytes. has_weight_data is 0 when the artifacts have
 *   no weightData at all (a topology-only save).
 * A plugin that keeps a buffer after the call takes its own reference with
 * host->buffer_share.
 */
typedef struct stowage_artifacts {
  uint32_t struct_size;
  uint32_t has_weight_data;
  const char* json;
  uint64_t json_size;
  const stowage_buffer* buffers;
  uint64_t buffer_count;
  uint64_t weight_bytes;
  /* ABI 1.1: the pull form (a streaming copy). Read these fields only when
   * struct_size reaches them; a 1.0 host leaves them out.
   * Only a scheme declaring STOWAGE_CAP_STREAMING_SAVE ever gets the pull
   * form, and it must accept both forms; every other plugin gets buffers as
   * in 1.0. In the pull form buffers is NULL, buffer_count is 0,
   * has_weight_data is 1 and next_buffer is set: the weight bytes come from
   * a load that may still be running, so how they are cut into buffers is
   * not known up front. Their sizes are: json's flat weightSpecs fix every
   * tensor's byte size, weight_bytes is their exact sum, and the
   * concatenation of the pulled buffers is exactly weight_bytes long (the
   * host fails the pull that would break that, with DATA_LOSS). In the
   * array form next_buffer and source_context are NULL.
   * next_buffer(source_context, out, st) returns
   *    1: *out is the next buffer in order, owned by the plugin, which
   *       calls out->release when done with it (on any thread, also after
   *       save returned; a plugin keeping the bytes may copy them or keep
   *       the buffer). Until released, the buffer counts against the host's
   *       bounded queue: a saver that keeps every buffer makes the load wait
   *       for each one, never deadlock, but holds the model in memory.
   *    0: every buffer was pulled; *out is untouched.
   *   -1: the bytes cannot come: the load behind them failed (with its own
   *       code, e.g. NOT_FOUND, DATA_LOSS, UNAVAILABLE, DEADLINE_EXCEEDED),
   *       the copy was cancelled (CANCELLED), or out is NULL
   *       (INVALID_ARGUMENT). The host has already set st, the save's own
   *       status: the plugin stops, publishes nothing, leaves st as it is
   *       and returns.
   * It may block while the load catches up. It may be called from any
   * thread while save runs (never after save returned), but never from two
   * threads at once, and never again after it returned 0 or -1 (such a
   * call fails with INTERNAL). A save that succeeds without having pulled
   * up to the 0 is reported by the host as INTERNAL. A pull-form save is
   * never retried by the host (the bytes are consumed once). */
  int32_t (*next_buffer)(void* source_context, stowage_buffer* out, stowage_status* st);
  void* source_context; /* host-owned; passed back to next_buffer */
} stowage_artifacts;

/* ---- Host services ----------------------------------------------------- */

/* ABI 1.1: host-owned handle of a nested URL (host->nested_open). */
typedef struct stowage_nested stowage_nested;

/*
 * ABI 1.5: where a streamed nested load delivers (host->nested_load_stream).
 * Plugin-owned; the host reads it during the call only, up to struct_size.
 * Both callbacks run on the thread that called nested_load_stream, one at a
 * time, and return 0 to go on or non-zero to stop the load (the plugin
 * keeps its own reason; the call then fails with CANCELLED).
 * on_artifacts(context, json, json_len): once, before any buffer, with
 *   the artifacts JSON in the form nested_load's json has (the model.json
 *   fields with "weightsManifest", or the flat "weightSpecs"); borrowed for
 *   the callback.
 * on_buffer(context, index, buf): each weight buffer in index order (its
 *   place in the manifest's path order, or in the flat weight data), from
 *   0 up, as soon as the inner load completed it and the host checked it
 *   against the digest the JSON records for it (unless the call carries
 *   STOWAGE_CALL_SKIP_DIGESTS). Ownership of *buf moves to the plugin,
 *   which calls buf->release when done (on any thread, also after the call
 *   returned); until then the buffer counts against queue_bytes, so a
 *   plugin that releases buffers as it goes holds a few of them, and one
 *   that keeps every buffer makes the load wait for each, never deadlock.
 * queue_bytes: the most weight bytes the host holds for this load at once,
 *   queued or handed out and not released (a single larger buffer passes
 *   alone); 0 for the host's default, 64 MiB.
 */
typedef struct stowage_load_consumer {
  uint32_t struct_size;
  uint32_t reserved0;
  void* context; /* passed back to both callbacks */
  int32_t (*on_artifacts)(void* context, const char* json, size_t json_len);
  int32_t (*on_buffer)(void* context, uint64_t index, stowage_buffer* buf);
  uint64_t queue_bytes;
} stowage_load_consumer;

typedef struct stowage_host_api {
  uint32_t struct_size;
  uint32_t abi_major;
  uint32_t abi_minor;
  uint32_t reserved0;
  /* Fails the current call. retryable marks transient failures the host may
   * retry under its retry policy; plugins never retry on their own. */
  void (*status_set)(stowage_status* st, int32_t code, int32_t retryable, const char* msg,
                     size_t msg_len);
  /* Sets the sink's text: the artifacts JSON of load, the info JSON of
   * remove, the response JSON of save, the stat JSON of stat, the URL of
   * convert_weight_url. */
  void (*sink_set_text)(stowage_sink* sink, const char* text, size_t len);
  /* Appends one weight buffer to a load sink; the host takes ownership and
   * sets buf->release to NULL. */
  void (*sink_add_buffer)(stowage_sink* sink, stowage_buffer* buf);
  /* Appends one model to a list sink: its URL and its ModelArtifactsInfo JSON
   * ({"dateSaved":...,"modelTopologyType":"JSON",...}). */
  void (*sink_add_model)(stowage_sink* sink, const char* url, size_t url_len, const char* info_json,
                         size_t info_len);
  /* Makes *out a new owning reference to the bytes of src (which stays
   * valid); the plugin releases *out when done. */
  void (*buffer_share)(const stowage_buffer* src, stowage_buffer* out);
  /* Diagnostic log line; level 0 debug, 1 info, 2 warning. Never pass secrets. */
  void (*log)(int32_t level, const char* msg, size_t msg_len);
  /* A new empty text sink owned by the plugin until it calls sink_free
   * (for call->convert_weight_url). NULL when out of memory. */
  stowage_sink* (*sink_new_text)(void);
  /* The text last set on a sink from sink_new_text, or NULL with *len = 0
   * when none was set. Valid until the sink is changed or freed. */
  const char* (*sink_get_text)(const stowage_sink* sink, size_t* len);
  void (*sink_free)(stowage_sink* sink);
  /* ABI 1.1 (absent in a 1.0 host: check struct_size). For schemes
   * declaring STOWAGE_CAP_STREAMING_LOAD, on a load sink only: hands over
   * the weight buffer at position index (its place in the manifest's path
   * order, or in the flat weight data) as soon as it is complete, after
   * sink_set_text with the artifacts JSON. The host takes ownership and sets
   * buf->release to NULL, whatever it returns. Every index from 0 to the last
   * is put exactly once; a load that puts one twice, leaves a gap, also calls
   * sink_add_buffer, or puts with no STREAMING_LOAD bit, fails with INTERNAL.
   * Several threads of the load may put at once (each its own indexes, rising);
   * the call may block while the consumer catches up (back-pressure: the
   * host bounds the bytes it holds, but never blocks the put of the buffer
   * its consumer needs next, so a plugin that completes buffers in order
   * cannot deadlock). Returns 0 when accepted; non-zero when the consumer
   * gave up (a failed or cancelled copy) or the put broke the rules above:
   * the plugin then stops putting and fails the load with STOWAGE_CANCELLED,
   * publishing nothing. Never call it after load returned. */
  int32_t (*sink_put_buffer)(stowage_sink* sink, uint64_t index, stowage_buffer* buf);

  /*
   * ABI 1.1: nested URLs (absent in a 1.0 host, and NULL in a host that
   * has no registry to offer: check struct_size and the pointer). A plugin
   * that wraps another URL (a decorator: fault://<URL>, a cache) opens a
   * handler for it through the host's registry instead of loading code
   * itself: the host's allow-list, SHA-256 pins, aliases, per-scheme
   * default options and retry policy apply exactly as to a URL the host
   * opened itself, so a URL never loads a plugin the host did not allow.
   *
   * nested_open(url, url_len, options_json, options_len, out, st) opens a
   * handler for url (any scheme the host serves, aliases applied) with
   * options, a JSON object merged over the scheme's configured defaults
   * ("{}" or NULL: none). It may only be called from inside ops->open, on
   * the thread the host called open on: the host knows which registry and
   * which chain of URLs the open belongs to only there (called anywhere
   * else it fails with INTERNAL). Returns STOWAGE_OK with *out set, or the
   * code it set on st with *out NULL: the registry's errors (NOT_FOUND for
   * a scheme nobody serves or a plugin the allow-list leaves out,
   * PERMISSION_DENIED for a pin mismatch, the wrapped plugin's own open
   * errors), or INVALID_ARGUMENT when the open would nest URLs in a cycle
   * (a URL, after aliases, that is already being opened further out, e.g.
   * an alias a:// -> fault://b:// with b:// -> fault://a://), or deeper than
   * 8 URLs, or re-enter a single-threaded plugin that is being opened
   * further out (its lock is held); the message names the chain of URLs.
   * *out is owned by the plugin, which closes it with nested_close (never
   * fails; after every call on it has returned) before its own handler's
   * close returns. A nested handle may be used from several threads at
   * once, like a handler; the host serialises a single-threaded inner
   * plugin itself.
   *
   * The calls below each run one operation on the nested handle with the
   * host's validation and retry policy, and return STOWAGE_OK or the code
   * they set on st. call is the plugin's own stowage_call (or NULL for
   * none): the inner call polls its is_cancelled, passes its
   * deadline_unix_ms, reports progress through its progress and converts
   * weight URLs with its convert_weight_url, so the outer caller's
   * cancellation and deadline reach the inner plugin. A failure is set on
   * st with the inner error's code and message and retryable 0: the host
   * has already retried it under its policy, and passing st on unchanged
   * keeps the outer call from being retried on top of that. An operation
   * the inner URL's scheme does not declare fails with UNIMPLEMENTED.
   *
   * nested_save(n, artifacts, call, result, st): saves artifacts (either
   * form of stowage_artifacts; a pull form is pulled to its end first, so
   * the whole model is held in memory) with the inner save's guarantees.
   * result, when not NULL, is a text sink (the plugin's own save result
   * sink, or one from sink_new_text) that gets the inner response JSON
   * when there is one.
   * nested_load(n, call, out, st): loads the model, validated against its
   * weight specs, into *out: host-owned artifacts the plugin reads (json:
   * the model.json fields with "weightsManifest" and one buffer per path,
   * labelled with its file or URL, when the inner load had a manifest,
   * else the flat "weightSpecs" with the weight data cut into buffers;
   * the form a load sink accepts) and frees with nested_artifacts_free
   * (from any thread). To forward it, the plugin sets json on its own sink
   * and hands each buffer on with buffer_share + sink_add_buffer (no copy);
   * a decorator may rewrite either on the way. On failure *out is NULL.
   * nested_list(n, call, out, st): on a list sink adds every model with
   * sink_add_model (the inner URLs, unchanged); on a text sink sets a JSON
   * array [{"url": "...", "info": {ModelArtifactsInfo}}, ...].
   * nested_remove(n, call, out, st) and nested_stat(n, call, out, st): set
   * on the text sink out the info JSON remove sets, or the stat JSON of
   * ops->stat. nested_stat passes call's known_version (ABI 1.3) to the
   * inner stat, so out may hold the "unchanged" answer of ops->stat; with a
   * 1.2 host, or an inner plugin that ignores it, it holds a full stat.
   * nested_save and nested_load hold the whole model: a decorator that
   * wants bounded memory loads with nested_load_stream (ABI 1.5, below).
   */
  int32_t (*nested_open)(const char* url, size_t url_len, const char* options_json,
                         size_t options_len, stowage_nested** out, stowage_status* st);
  void (*nested_close)(stowage_nested* nested);
  int32_t (*nested_save)(stowage_nested* nested, const stowage_artifacts* artifacts,
                         const stowage_call* call, stowage_sink* result, stowage_status* st);
  int32_t (*nested_load)(stowage_nested* nested, const stowage_call* call, stowage_artifacts** out,
                         stowage_status* st);
  void (*nested_artifacts_free)(stowage_artifacts* artifacts);
  int32_t (*nested_list)(stowage_nested* nested, const stowage_call* call, stowage_sink* out,
                         stowage_status* st);
  int32_t (*nested_remove)(stowage_nested* nested, const stowage_call* call, stowage_sink* out,
                           stowage_status* st);
  int32_t (*nested_stat)(stowage_nested* nested, const stowage_call* call, stowage_sink* out,
                         stowage_status* st);
  /*
   * ABI 1.1, with the nested services (NULL where they are): statuses a
   * plugin owns, so it can run a nested call on the side and read how it
   * ended before it decides what its own call reports. status_new returns
   * an empty status (NULL when out of memory) that the plugin frees with
   * status_free; use one from one thread at a time. status_get reads any
   * status (also one the host passed in): returns its code (STOWAGE_OK when
   * nothing failed), sets *retryable (0/1) and *msg / *msg_len to its
   * message, valid until the status is set again or freed; each out
   * pointer may be NULL.
   */
  stowage_status* (*status_new)(void);
  void (*status_free)(stowage_status* st);
  int32_t (*status_get)(const stowage_status* st, int32_t* retryable, const char** msg,
                        size_t* msg_len);
  /*
   * ABI 1.2 (NULL in an older host: check struct_size and the pointer).
   * Names the network request whose failure st reports, after status_set,
   * so that when the host retries the call it can say what it is trying
   * again ("retrying GET https://h/m/model.json (2/4) after HTTP 503"):
   * method ("GET"), url (pass it redacted; the host redacts it again) and
   * reason ("HTTP 503", "connection reset by peer while reading the body").
   * Ignored when st has not failed; optional, for retryable failures that
   * come from one request.
   */
  void (*status_set_request)(stowage_status* st, const char* method, size_t method_len,
                             const char* url, size_t url_len, const char* reason,
                             size_t reason_len);
  /*
   * ABI 1.4 (NULL in an older host: check struct_size and the pointer).
   * On a load sink (ignored on any other): the plugin has hashed the bytes
   * of the weight buffer at position index (its place in the manifest's
   * path order, as sink_put_buffer counts) with SHA-256 in this call and
   * they hash to sha256_hex (sha256_len bytes: 64 lowercase hex digits).
   * The host then skips its own check of that buffer, but only when the
   * artifacts JSON this load sets records exactly that digest for that
   * path: a mark naming another digest (or a malformed one, or an index
   * whose file has no recorded digest, or any index of a load with a flat
   * weightSpecs) changes nothing, and the host hashes the buffer as before.
   * So a plugin can only vouch for the digest its own model.json records;
   * the comparison with that digest is the host's. A mark is a promise
   * (plugins are trusted code in the host's process): the bytes handed
   * over for index are the bytes the plugin hashed, and they matched.
   * Mark a buffer before handing it over (sink_add_buffer or
   * sink_put_buffer): a streamed load checks each buffer as it arrives,
   * and a mark that comes later may change nothing. A second mark of one
   * index replaces the first. Marks may come from several threads.
   * The host hashes every buffer anyway, marked or not, when its caller
   * asks for an independent check (`stowage verify`, a copy reading back
   * what it wrote); a caller that opted out of digests
   * (STOWAGE_CALL_SKIP_DIGESTS) has nothing hashed either way. A plugin
   * built before ABI 1.4 never marks: every buffer is checked, as before.
   * A nested load (nested_load) whose call did not carry
   * STOWAGE_CALL_SKIP_DIGESTS was checked by the host against the digests
   * its JSON records (the inner plugin's own marks applied there): a
   * decorator that hands those buffers on under a JSON recording the same
   * digests may mark each with its digest, so the bytes are hashed once,
   * not once per level of nesting.
   */
  void (*sink_mark_verified)(stowage_sink* sink, uint64_t index, const char* sha256_hex,
                             size_t sha256_len);
  /*
   * ABI 1.5 (NULL in an older host: check struct_size and the pointer).
   * nested_load_stream(n, call, consumer, st): nested_load, streamed. The
   * inner load runs on a host thread while consumer's callbacks get the
   * artifacts JSON and then each weight buffer as it arrives, on the
   * calling thread (stowage_load_consumer above), so a decorator can write
   * or forward the model while it downloads, holding at most
   * consumer->queue_bytes of it. Validation is nested_load's, buffer by
   * buffer: each buffer's digest is checked before on_buffer gets it; the
   * buffers' sizes against the weight specs when the load ends (a mismatch
   * fails the call with DATA_LOSS after on_buffer saw the buffers before
   * it). A model with string weights, whose sizes are known only from its
   * bytes, is loaded and checked whole first and then handed over the same
   * way; an inner scheme without STOWAGE_CAP_STREAMING_LOAD hands its
   * buffers over when its load adds them (at its end, as a rule). Returns
   * STOWAGE_OK once every buffer was handed over and the load succeeded,
   * or the code it set on st: the inner load's error (as nested_load:
   * retryable 0), CANCELLED when a callback returned non-zero (the inner
   * load is stopped and no further callback comes), INVALID_ARGUMENT for a
   * NULL or too small consumer. The host retries the inner load under its
   * policy only while it has delivered nothing (what reached the plugin
   * cannot be taken back). A plugin publishes nothing from a call that did
   * not return STOWAGE_OK.
   */
  int32_t (*nested_load_stream)(stowage_nested* nested, const stowage_call* call,
                                const stowage_load_consumer* consumer, stowage_status* st);
} stowage_host_api;

/* ---- Operations -------------------------------------------------------- */

/* Plugin-owned; one per URL, created by open and destroyed by close. */
typedef struct stowage_handler stowage_handler;

typedef struct stowage_ops {
  uint32_t struct_size;
  uint32_t reserved0;

  /*
   * Creates a handler for url (the full URL, scheme included) with options, a
   * JSON object ("{}" when none). Nothing is read or written yet.
   * INVALID_ARGUMENT: the URL is malformed for this scheme, names a path
   *   that escapes its root, or options has an unknown key or a wrong type.
   * On failure *out stays NULL.
   */
  void (*open)(const char* url, size_t url_len, const char* options_json, size_t options_len,
               stowage_handler** out, stowage_status* st);

  /* Destroys a handler. Never fails. Buffers handed out stay valid. */
  void (*close)(stowage_handler* handler);

  /*
   * Stores the artifacts at the handler's URL, replacing a model already
   * there. On success the sink may hold a response JSON (http: status and
   * body) via sink_set_text.
   * A failed or cancelled save leaves the previous model, or no model,
   * exactly as it was; plugins with STOWAGE_CAP_ATOMIC_SAVE also guarantee
   * readers never see a mix of old and new.
   * INVALID_ARGUMENT: the artifacts cannot be stored (e.g. malformed json).
   * PERMISSION_DENIED: the store refused the write.
   * RESOURCE_EXHAUSTED: no room (disk full, quota).
   * ALREADY_EXISTS: the destination exists and the scheme never overwrites.
   * CANCELLED / DEADLINE_EXCEEDED: see stowage_call.
   * UNAVAILABLE (retryable): a transient failure; nothing was published.
   */
  void (*save)(stowage_handler* handler, const stowage_artifacts* artifacts,
               const stowage_call* call, stowage_sink* result, stowage_status* st);

  /*
   * Loads the model at the handler's URL into out: sink_set_text with the
   * artifacts JSON, then sink_add_buffer for the weight bytes.
   * The JSON has the model.json fields; its weights are described either by
   * "weightsManifest" (then exactly one buffer per manifest path, in manifest
   * order, labelled with its file or URL) or by a flat "weightSpecs" (then
   * the buffers' concatenation is the weight data).
   * The host checks each weight file against the SHA-256 the manifest
   * records, except one the plugin has already checked against exactly
   * that digest and says so (host->sink_mark_verified, ABI 1.4).
   * NOT_FOUND: no model at the URL.
   * DATA_LOSS: a weight file is missing or shorter/longer than stored.
   * INVALID_ARGUMENT: the stored model.json is not valid, or a weight path
   *   in it is absolute, contains "..", or escapes the model's folder.
   * PERMISSION_DENIED, UNAVAILABLE, CANCELLED, DEADLINE_EXCEEDED: as above.
   */
  void (*load)(stowage_handler* handler, const stowage_call* call, stowage_sink* out,
               stowage_status* st);

  /*
   * Lists the models at or under the handler's URL with sink_add_model, each
   * by a URL that load accepts. An empty or missing location lists nothing
   * and succeeds.
   */
  void (*list)(stowage_handler* handler, const stowage_call* call, stowage_sink* out,
               stowage_status* st);

  /*
   * Removes exactly the model at the handler's URL (model.json and the
   * weight files its manifest names, nothing else) and sets the removed
   * model's info JSON with sink_set_text.
   * NOT_FOUND: no model at the URL.
   */
  void (*remove)(stowage_handler* handler, const stowage_call* call, stowage_sink* out,
                 stowage_status* st);
  /* ABI 1.x additions go below this line. */

  /* ABI 1.1 additions. */

  /*
   * Describes the model at the handler's URL without reading its weight
   * bytes (set only with STOWAGE_CAP_STAT). Sets on out, with
   * sink_set_text, one JSON object:
   *   {"modelJson": <the artifacts JSON load would set, as a JSON object>,
   *    "version": "<token>",
   *    "info": <the ModelArtifactsInfo JSON of the model, as list gives>}
   * "info"'s weightDataBytes is the stored weight bytes load would return.
   * The version token is an opaque non-empty string; two stats of the same
   * stored model give the same token, and any replacement of the model
   * (a save, or a weight file rewritten behind an unchanged model.json
   * where the store can see it) gives another one. The host and callers
   * only compare it for equality, never parse it; it carries no secret.
   * The plugin that made it may read it back when it comes as
   * call->known_version (e.g. to rebuild the store's validators), and
   * treats a token it cannot read, or one made for another URL, as none.
   * ABI 1.3, revalidation: with call->known_version set, a plugin that can
   * tell (an HTTP conditional GET answered 304) that the stored model is
   * still the one that token names may set instead
   *   {"version": "<token>", "unchanged": true}
   * with no "modelJson" and no "info" (the host ignores them if present):
   * the caller keeps its copy. "<token>" is the known token, or a newer
   * token of the same stored model that the caller records in its place
   * (see STOWAGE_CALL_STAT_SHALLOW). Without known_version a plugin never
   * answers "unchanged" (the host fails such an answer with INTERNAL), and
   * "unchanged": false or absent is a full stat as above. A plugin that
   * ignores known_version always answers in full, which every caller
   * accepts: it then compares the tokens itself.
   * May be called from several threads at once, like load.
   * NOT_FOUND: no model at the URL.
   * INVALID_ARGUMENT: the stored model.json is not valid.
   * PERMISSION_DENIED, UNAVAILABLE, CANCELLED, DEADLINE_EXCEEDED: as above.
   */
  void (*stat)(stowage_handler* handler, const stowage_call* call, stowage_sink* out,
               stowage_status* st);
} stowage_ops;

/* ---- Descriptor -------------------------------------------------------- */

#define STOWAGE_CAP_LOAD (1ull << 0)      /* ops->load is set */
#define STOWAGE_CAP_SAVE (1ull << 1)      /* ops->save is set */
#define STOWAGE_CAP_LIST (1ull << 2)      /* ops->list is set */
#define STOWAGE_CAP_REMOVE (1ull << 3)    /* ops->remove is set */
#define STOWAGE_CAP_ZERO_COPY (1ull << 4) /* load hands out borrowed buffers (mmap, shared) */
#define STOWAGE_CAP_ATOMIC_SAVE                                    \
  (1ull << 5) /* readers see the old or the new model, never a mix \
               */
#define STOWAGE_CAP_SINGLE_THREADED (1ull << 6) /* the host must serialise calls */
#define STOWAGE_CAP_STAT (1ull << 7)            /* ops->stat is set (ABI 1.1) */
/* ABI 1.1: save accepts the pull form of stowage_artifacts (next_buffer) as
 * well as the array form. Needs STOWAGE_CAP_SAVE on the same scheme. */
#define STOWAGE_CAP_STREAMING_SAVE (1ull << 8)
/* ABI 1.1: load hands each weight buffer over with host->sink_put_buffer as
 * soon as it is complete (with a 1.0 host, which has no sink_put_buffer,
 * with sink_add_buffer in order). Needs STOWAGE_CAP_LOAD on the same scheme.
 * Both streaming bits are ignored in a descriptor with abi_minor 0. */
#define STOWAGE_CAP_STREAMING_LOAD (1ull << 9)

typedef struct stowage_plugin_desc {
  uint32_t struct_size;
  uint32_t abi_major; /* STOWAGE_ABI_MAJOR the plugin was built against */
  uint32_t abi_minor;
  uint32_t scheme_count;
  const char* name;           /* equals the manifest's "name" */
  const char* version;        /* the plugin's own version */
  const char* const* schemes; /* lowercase, without "://"; static storage */
  uint64_t capabilities;      /* STOWAGE_CAP_* bits; the host checks them against ops */
  const stowage_ops* ops;     /* static storage inside the plugin */

  /* ABI 1.1 additions. */

  /*
   * Per-scheme capabilities: scheme_count entries, scheme_capabilities[i]
   * holding the STOWAGE_CAP_* bits of schemes[i]; static storage inside the
   * plugin, read once by the host under its loader lock. NULL (or a 1.0
   * descriptor, which ends before this field) gives every scheme the
   * plugin-wide `capabilities`. With the array, the host ignores the
   * plugin-wide bits except STOWAGE_CAP_SINGLE_THREADED (a property of the
   * library, read from `capabilities` only and ignored in the array); a
   * plugin sets `capabilities` to the union of its schemes' bits so that a
   * 1.0 host sees a sensible whole. A scheme whose bits name an operation
   * the ops table lacks gets the whole plugin refused. The host calls an
   * operation for a URL only when the URL's scheme declares its bit, and
   * otherwise fails the call with STOWAGE_UNIMPLEMENTED naming the scheme,
   * without reaching the plugin.
   */
  const uint64_t* scheme_capabilities;
} stowage_plugin_desc;

/*
 * The entry point. Called once, with the host's services (valid for the
 * life of the process). Returns the plugin's descriptor in static storage,
 * or NULL if the plugin cannot run (then it should log why).
 */
typedef const stowage_plugin_desc* (*stowage_entry_fn)(const stowage_host_api* host);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* STOWAGE_ABI_H_ */
