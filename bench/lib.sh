# bench/lib.sh — shell helpers shared by the benchmark scripts (source it; bash only).
#
# busy_fraction: the fraction of all CPUs that processes used over half a second, from
#   /proc/PID/stat (niced jobs count too: next to a nice-19 CPU hog, a 2-thread OpenMP step
#   that spin-waits at its barriers slows down by 100×).
# wait_quiet: waits until busy_fraction is below $QUIET (default 0.15; 0 = do not wait), for at
#   most $QUIET_MAX seconds (default 3600), printing a note every 30 s to stderr; leaves the
#   last reading in $BUSY.

busy_fraction() {
    python3 - <<'PY'
import os, time

def snap():
    s = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    d = f.read()
            except OSError:
                continue
            x = d[d.rfind(")") + 2:].split()  # fields 3.. of proc(5): utime 14, stime 15
            s[p] = int(x[11]) + int(x[12])
    return s

a = snap()
time.sleep(0.5)
b = snap()
busy = sum(t - a[p] for p, t in b.items() if p in a)
print("%.3f" % (busy / (0.5 * os.sysconf("SC_CLK_TCK") * os.cpu_count())))
PY
}

BUSY=0
wait_quiet() {
    local quiet=${QUIET:-0.15} max=${QUIET_MAX:-3600} waited=0
    BUSY=$(busy_fraction)
    [ "$quiet" = 0 ] && return 0
    while awk -v b="$BUSY" -v q="$quiet" 'BEGIN { exit !(b >= q) }' && ((waited < max)); do
        ((waited % 30 == 0)) && echo "$(basename "$0"): waiting for a quiet machine (CPUs ${BUSY} busy)" >&2
        sleep 1
        waited=$((waited + 1))
        BUSY=$(busy_fraction)
    done
    return 0
}
