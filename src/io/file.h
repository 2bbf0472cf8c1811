/* file.h — internal file plumbing for io/: a streaming atomic writer (the checkpoint writer
 * streams parameters through it without copying them), a read-exactly helper, and a
 * fault-injection hook for tests. Not a general I/O layer: POSIX only, whole files only. */
#ifndef KN_IO_FILE_H
#define KN_IO_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "kiln/core.h"

/* An atomic file being written: data goes to PATH.tmp.<pid>; commit fsyncs it, renames it
 * over PATH and fsyncs the directory. Any failure (of open, write, fsync, close or rename)
 * removes the temporary file, leaves PATH as it was, and reports KN_ERR_IO with strerror and
 * both paths. After a failed write or commit the writer is closed: only _abort (a no-op then)
 * may follow. A process killed while writing leaves PATH.tmp.<pid> behind; PATH is intact.
 * Two writers of the same PATH in one process at once are not supported (same temp name). */
typedef struct kn__afile {
    int fd;          /* -1 once closed */
    char *path;      /* final path (owned copy) */
    char *tmp;       /* temporary path (owned) */
    char *dir;       /* directory of path, fsync'ed after the rename (owned) */
    uint64_t written;
} kn__afile;

kn_status kn__afile_open(kn__afile *f, const char *path, kn_error *err);
kn_status kn__afile_write(kn__afile *f, const void *data, size_t size, kn_error *err);
kn_status kn__afile_commit(kn__afile *f, kn_error *err);
void kn__afile_abort(kn__afile *f); /* closes and removes the temporary file; idempotent */

/* Reads up to n bytes (retrying short reads and EINTR) into buf; *got is what was read (less
 * than n only at end of file). KN_ERR_IO naming path when a read fails. */
kn_status kn__read_fully(int fd, void *buf, size_t n, size_t *got, const char *path, kn_error *err);

/* Test hook (process-wide, not thread-safe; never set outside tests): make the given stage
 * fail with errno errnum. WRITE and READ fail once after_bytes bytes in total have gone
 * through since the call (the write in progress is cut short there, as a full disk does);
 * FSYNC, CLOSE and RENAME fail at their next call. KN__IO_FAULT_NONE clears it. */
typedef enum kn__io_fault {
    KN__IO_FAULT_NONE,
    KN__IO_FAULT_WRITE,
    KN__IO_FAULT_READ,
    KN__IO_FAULT_FSYNC,
    KN__IO_FAULT_CLOSE,
    KN__IO_FAULT_RENAME,
} kn__io_fault;
void kn__io_set_fault(kn__io_fault where, uint64_t after_bytes, int errnum);

#endif
