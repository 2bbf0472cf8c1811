# transform.py SRC.cu DST.cpp — rewrites every kernel launch `k<T><<<grid, block, shm, stream>>>(args)`
# of a CUDA source as `kn_emu_launch(grid, block, shm, stream, [args = std::make_tuple(args)] {
# k<T>(args...); })` so that g++ compiles it against emu_device.h (tests/gpu/emu/run.sh). The
# arguments are evaluated at the launch, as CUDA does, and kept by value: a launch queued on a
# stream (EMU_ASYNC) or recorded by a stream capture runs later, after the launcher's locals
# (e.g. a descriptor passed as *desc) are gone.
import sys, re, os
src, dst = sys.argv[1], sys.argv[2]
s = open(src).read()
out = []
i = 0
while True:
    k = s.find('<<<', i)
    if k < 0:
        out.append(s[i:]); break
    # name: scan back over template brackets and identifier chars
    j = k
    while s[j-1].isspace(): j -= 1
    if s[j-1] == '>':
        depth = 0
        j -= 1
        while True:
            if s[j] == '>': depth += 1
            elif s[j] == '<':
                depth -= 1
                if depth == 0: break
            j -= 1
    while j > 0 and (s[j-1].isalnum() or s[j-1] == '_'):
        j -= 1
    name = s[j:k]
    e = s.find('>>>', k)
    cfg = s[k+3:e]
    # args: matching parens after >>>
    p = e + 3
    while s[p].isspace(): p += 1
    assert s[p] == '(', (src, s[p-40:p+40])
    depth = 0; q = p
    while True:
        if s[q] == '(': depth += 1
        elif s[q] == ')':
            depth -= 1
            if depth == 0: break
        q += 1
    args = s[p+1:q]
    out.append(s[i:j])
    out.append('kn_emu_launch(%s, [kn_emu_args = std::make_tuple(%s)] { std::apply([](const auto &...a) { %s(a...); }, kn_emu_args); })' % (cfg, args, name))
    i = q + 1
open(dst, 'w').write('#include "emu_device.h"\n#line 1 "%s"\n' % src + ''.join(out))
