/* Private files: keys and tokens kept in 0600 files. Reads refuse files that group or
 * others can access or that another user owns, so a leaked permission is an error,
 * not a silent exposure. */
#ifndef ALN_PROTO_KEYFILE_H
#define ALN_PROTO_KEYFILE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/secmem.h"
#include "proto/status.h"

/* aln_keyfile_read reads the whole file |path| (at most |max| bytes) into a new
 * secret |out|. ALN_ERR_NOT_FOUND if it does not exist, ALN_ERR_PERMS if its mode
 * allows group/other access or it is not a regular file owned by the effective
 * user, ALN_ERR_TOO_LARGE past |max|, ALN_ERR_IO otherwise. */
aln_status aln_keyfile_read(struct aln_secret *out, const char *path, size_t max) ALN_WUR;

/* aln_file_read_public reads the whole non-secret file |path| (a certificate, a
 * policy reference, a recovery file; at most |max| bytes) into a new buffer *out
 * (free with free()), NUL-terminated one past *out_len for callers that read it
 * as text. ALN_ERR_NOT_FOUND if it does not exist, ALN_ERR_TOO_LARGE past |max|,
 * ALN_ERR_NOMEM, ALN_ERR_IO otherwise; *out is NULL on error. */
aln_status aln_file_read_public(uint8_t **out, size_t *out_len, const char *path, size_t max) ALN_WUR;

/* aln_keyfile_write_new creates |path| with mode 0600 (O_EXCL: never overwrites),
 * writes |len| bytes, fsyncs the file and its directory. ALN_ERR_EXISTS if present. */
aln_status aln_keyfile_write_new(const char *path, const uint8_t *data, size_t len) ALN_WUR;

/* aln_keyfile_replace atomically replaces |path| (creating it if absent) with |len|
 * bytes, mode 0600: writes "<path>.tmp", fsyncs it, renames it over |path| and
 * fsyncs the directory. A crash leaves either the old or the new contents. */
aln_status aln_keyfile_replace(const char *path, const uint8_t *data, size_t len) ALN_WUR;

/* aln_keyfile_load_or_create reads |path| expecting exactly |len| bytes, or, when it
 * does not exist, creates it with |len| random bytes. ALN_ERR_STORE if an existing
 * file has another size. */
aln_status aln_keyfile_load_or_create(struct aln_secret *out, const char *path, size_t len) ALN_WUR;

/* aln_path_join writes "|dir|/|name||suffix|" (suffix may be NULL) to |out| of
 * PATH_MAX bytes; ALN_ERR_USAGE if it does not fit. */
aln_status aln_path_join(char *out, const char *dir, const char *name, const char *suffix) ALN_WUR;

/* aln_private_dir_ensure creates directory |path| with mode 0700 if missing and
 * returns ALN_ERR_PERMS if an existing one is group/other accessible. */
aln_status aln_private_dir_ensure(const char *path) ALN_WUR;

/* aln_hex_encode writes 2*len lowercase hex chars and a NUL into |out| (out_cap must
 * be at least 2*len+1; ALN_ERR_USAGE otherwise). */
aln_status aln_hex_encode(char *out, size_t out_cap, const uint8_t *in, size_t len) ALN_WUR;

/* aln_hex_decode decodes exactly |out_len| bytes from the hex string |in| of length
 * |in_len| (must be 2*out_len). ALN_ERR_MALFORMED on bad length or character. */
aln_status aln_hex_decode(uint8_t *out, size_t out_len, const char *in, size_t in_len) ALN_WUR;

/* aln_fsync_dir makes the renames, links and unlinks made in |dir| durable;
 * ALN_ERR_IO if it cannot be opened or synced. */
aln_status aln_fsync_dir(const char *dir) ALN_WUR;

#endif
