# Used by callgrind-call.sh. usage: call-replay.py MONITOR_FILE N OUT  -- RESP for N (call-admit, call-finish) pairs, each with its own id
import shlex, sys
mon, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lines = [l for l in open(mon) if '"FCALL"' in l and 'lua]' not in l]
def parse(l):
    return shlex.split(l.split('] ', 1)[1].replace('\\n', '\n'))
admit = parse([l for l in lines if 'call_admit' in l][-1])
finish = parse([l for l in lines if 'call_finish' in l][-1])
rid = [t for t in admit if t.startswith('sluice:{openai}:r:')][0].split(':r:')[1]
def resp(toks):
    b = b'*%d\r\n' % len(toks)
    for t in toks:
        e = t.encode(); b += b'$%d\r\n%s\r\n' % (len(e), e)
    return b
with open(out, 'wb') as f:
    for i in range(n):
        new = '%016x-%016x' % (i, i * 7919)
        f.write(resp([t.replace(rid, new) for t in admit]))
        f.write(resp([t.replace(rid, new) for t in finish]))
print(admit[1], finish[1], 'id', rid)
