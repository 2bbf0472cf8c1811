/* file.c — atomic whole-file writes (temporary file, fsync, rename, directory fsync), whole-
 * file reads with a size cap, and the fault-injection hook tests use to simulate a full disk
 * or a failing device. Every return value of the system calls is checked. Not portable
 * beyond POSIX, and not a buffered I/O layer: callers hand over large blocks. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem, O_DIRECTORY, ... even under -std=c11 */
#endif
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "kiln/io.h"

/* ---- fault injection (tests only) ------------------------------------------------------ */
static kn__io_fault fault_where;
static uint64_t fault_left;
static int fault_errno;

void kn__io_set_fault(kn__io_fault where, uint64_t after_bytes, int errnum)
{
    fault_where = where;
    fault_left = after_bytes;
    fault_errno = errnum ? errnum : EIO;
}

/* How many of n bytes the next read/write of stage `where` may move; 0 with errno set means
 * "fail now". Returns n when no fault is armed for that stage. */
static size_t fault_allow(kn__io_fault where, size_t n)
{
    if (fault_where != where)
        return n;
    if (fault_left == 0) {
        fault_where = KN__IO_FAULT_NONE; /* one-shot */
        errno = fault_errno;
        return 0;
    }
    return n < fault_left ? n : (size_t)fault_left;
}

static void fault_consume(kn__io_fault where, size_t n)
{
    if (fault_where == where)
        fault_left -= n < fault_left ? n : fault_left;
}

static bool fault_now(kn__io_fault where)
{
    if (fault_where != where)
        return false;
    fault_where = KN__IO_FAULT_NONE;
    errno = fault_errno;
    return true;
}

/* ---- atomic writer ----------------------------------------------------------------------- */
static void afile_release(kn__afile *f)
{
    kn__free(f->path);
    kn__free(f->tmp);
    kn__free(f->dir);
    f->path = f->tmp = f->dir = NULL;
}

void kn__afile_abort(kn__afile *f)
{
    if (!f)
        return;
    if (f->fd >= 0) {
        close(f->fd);
        f->fd = -1;
    }
    if (f->tmp)
        unlink(f->tmp);
    afile_release(f);
}

/* Records "PATH: <what> failed: <strerror> ..." and aborts the file. */
static kn_status afile_fail(kn__afile *f, int e, const char *what, kn_error *err)
{
    kn_error_set(err, KN_ERR_IO, "%s: %s failed: %s (temporary file %s removed; %s is unchanged)%s", f->path, what,
                 strerror(e), f->tmp, f->path,
                 e == ENOSPC || e == EDQUOT ? ": free some disk space and retry" : "");
    kn__afile_abort(f);
    return KN_ERR_IO;
}

kn_status kn__afile_open(kn__afile *f, const char *path, kn_error *err)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    if (!path || !*path)
        return kn_error_set(err, KN_ERR_ARG, "atomic write: empty or NULL path");
    size_t n = strlen(path);
    const char *slash = strrchr(path, '/');
    size_t dn = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
    f->path = kn__strdup(path);
    f->tmp = kn__alloc(n + 32);
    f->dir = kn__alloc(dn + 1); /* allocated now: nothing may fail for want of memory after the rename */
    if (!f->path || !f->tmp || !f->dir) {
        afile_release(f);
        return kn_error_set(err, KN_ERR_OOM, "%s: out of memory", path);
    }
    snprintf(f->tmp, n + 32, "%s.tmp.%ld", path, (long)getpid());
    if (slash)
        memcpy(f->dir, path, dn);
    else
        f->dir[0] = '.';
    f->dir[dn] = '\0';
    for (int attempt = 0; attempt < 2; attempt++) {
        f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (f->fd >= 0 || errno != EEXIST)
            break;
        /* left by a killed process that had our pid: nobody else can be writing it */
        unlink(f->tmp);
    }
    if (f->fd < 0) {
        int e = errno;
        kn_error_set(err, KN_ERR_IO, "%s: cannot create the temporary file %s: %s (does the directory exist, and "
                     "is it writable?)", path, f->tmp, strerror(e));
        afile_release(f);
        return KN_ERR_IO;
    }
    return KN_OK;
}

kn_status kn__afile_write(kn__afile *f, const void *data, size_t size, kn_error *err)
{
    if (!f || f->fd < 0)
        return kn_error_set(err, KN_ERR_MISUSE, "atomic write: file is not open");
    const char *p = data;
    while (size > 0) {
        size_t chunk = size < ((size_t)1 << 30) ? size : ((size_t)1 << 30);
        chunk = fault_allow(KN__IO_FAULT_WRITE, chunk);
        ssize_t w = chunk ? write(f->fd, p, chunk) : -1;
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return afile_fail(f, errno, "write", err);
        }
        if (w == 0) /* no progress and no error: treat as a full device */
            return afile_fail(f, ENOSPC, "write", err);
        fault_consume(KN__IO_FAULT_WRITE, (size_t)w);
        p += w;
        size -= (size_t)w;
        f->written += (uint64_t)w;
    }
    return KN_OK;
}

/* fsync of the directory, so the rename itself survives a crash. */
static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return 0; /* cannot open it (no read permission): nothing more we can do */
    int rc = fsync(fd), e = errno;
    close(fd);
    /* EINVAL/EROFS: the filesystem does not support syncing directories */
    return (rc == 0 || e == EINVAL || e == EROFS) ? 0 : e;
}

kn_status kn__afile_commit(kn__afile *f, kn_error *err)
{
    if (!f || f->fd < 0)
        return kn_error_set(err, KN_ERR_MISUSE, "atomic write: file is not open");
    if (fault_now(KN__IO_FAULT_FSYNC) || fsync(f->fd) != 0)
        return afile_fail(f, errno, "fsync", err);
    int fd = f->fd;
    f->fd = -1;
    if (fault_now(KN__IO_FAULT_CLOSE)) {
        int e = errno;
        close(fd);
        return afile_fail(f, e, "close", err);
    }
    if (close(fd) != 0)
        return afile_fail(f, errno, "close", err);
    if (fault_now(KN__IO_FAULT_RENAME) || rename(f->tmp, f->path) != 0)
        return afile_fail(f, errno, "rename of the temporary file", err);
    int e = sync_dir(f->dir);
    kn_status st = KN_OK;
    if (e)
        st = kn_error_set(err, KN_ERR_IO, "%s: written and renamed, but syncing its directory failed: %s (the new "
                          "file may not survive a power loss)", f->path, strerror(e));
    afile_release(f);
    return st;
}

kn_status kn_write_file_atomic(const char *path, const void *data, size_t size, kn_error *err)
{
    if (!data && size)
        return kn_error_set(err, KN_ERR_ARG, "%s: NULL data with a size of %zu bytes", path ? path : "(null)", size);
    kn__afile f;
    kn_status st = kn__afile_open(&f, path, err);
    if (st)
        return st;
    if ((st = kn__afile_write(&f, data, size, err)))
        return st;
    return kn__afile_commit(&f, err);
}

/* ---- reading ------------------------------------------------------------------------------ */
kn_status kn__read_fully(int fd, void *buf, size_t n, size_t *got, const char *path, kn_error *err)
{
    char *p = buf;
    size_t k = 0;
    while (k < n) {
        size_t chunk = n - k < ((size_t)1 << 30) ? n - k : ((size_t)1 << 30);
        chunk = fault_allow(KN__IO_FAULT_READ, chunk);
        ssize_t r = chunk ? read(fd, p + k, chunk) : -1;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            *got = k;
            return kn_error_set(err, KN_ERR_IO, "%s: read failed after %zu bytes: %s", path, k, strerror(e));
        }
        if (r == 0)
            break;
        fault_consume(KN__IO_FAULT_READ, (size_t)r);
        k += (size_t)r;
    }
    *got = k;
    return KN_OK;
}

kn_status kn_read_file(const char *path, size_t max_size, void **data, size_t *size, kn_error *err)
{
    if (data)
        *data = NULL;
    if (size)
        *size = 0;
    if (!path || !data || !size)
        return kn_error_set(err, KN_ERR_ARG, "kn_read_file: NULL path, data or size");
    if (max_size > SIZE_MAX / 2)
        max_size = SIZE_MAX / 2;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return kn_error_set(err, KN_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return kn_error_set(err, KN_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(sb.st_mode)) {
        close(fd);
        return kn_error_set(err, KN_ERR_IO, "%s: is a directory, expected a file", path);
    }
    if (S_ISREG(sb.st_mode) && (uint64_t)sb.st_size > (uint64_t)max_size) {
        close(fd);
        return kn_error_set(err, KN_ERR_FORMAT, "%s: file is %lld bytes, more than the limit of %zu bytes", path,
                            (long long)sb.st_size, max_size);
    }
    /* Regular files: one read of the stat'ed size (+1 to see the end). Pipes and files that
     * grow while read: grow the buffer, never past max_size + 1. */
    size_t cap = S_ISREG(sb.st_mode) ? (size_t)sb.st_size + 1 : 65536;
    if (cap > max_size + 1)
        cap = max_size + 1;
    char *buf = kn__alloc(cap + 1);
    size_t len = 0;
    kn_status st = KN_OK;
    for (;;) {
        if (!buf) {
            st = kn_error_set(err, KN_ERR_OOM, "%s: out of memory for %zu bytes", path, cap + 1);
            break;
        }
        size_t got;
        if ((st = kn__read_fully(fd, buf + len, cap - len, &got, path, err)))
            break;
        len += got;
        if (len > max_size) {
            st = kn_error_set(err, KN_ERR_FORMAT, "%s: file is more than the limit of %zu bytes", path, max_size);
            break;
        }
        if (len < cap)
            break; /* end of file */
        size_t ncap = cap > (max_size + 1) / 2 ? max_size + 1 : 2 * cap;
        char *nb = kn__realloc(buf, len, ncap + 1);
        if (!nb)
            kn__free(buf);
        buf = nb;
        cap = ncap;
    }
    close(fd);
    if (st) {
        kn__free(buf);
        return st;
    }
    buf[len] = '\0';
    *data = buf;
    *size = len;
    return KN_OK;
}

int kn_make_dirs(const char *dir)
{
    char buf[4096];
    size_t n = dir ? strlen(dir) : 0;
    if (n == 0 || n >= sizeof buf) {
        errno = n ? ENAMETOOLONG : ENOENT;
        return -1;
    }
    memcpy(buf, dir, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return -1;
    struct stat sb;
    if (stat(buf, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}
