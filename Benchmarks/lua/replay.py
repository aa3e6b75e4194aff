# Used by storm-replay.sh. Two commands:
#   replay.py to-resp MONITOR_FILE OUT      the commands clients sent (MONITOR's output) as RESP, in order,
#                                           without those a script ran and without blocking or connection ones
#   replay.py send PORT RESP_FILE GAP_MS    sends them one at a time, waiting for each reply, then GAP_MS
import socket
import sys
import time

SKIP = {b'BLPOP', b'BRPOP', b'BZPOPMIN', b'BLMOVE', b'BRPOPLPUSH', b'MONITOR', b'SUBSCRIBE', b'PSUBSCRIBE',
        b'CLIENT', b'HELLO', b'SELECT', b'QUIT', b'SHUTDOWN', b'AUTH'}
ESCAPES = {'n': b'\n', 'r': b'\r', 't': b'\t', 'a': b'\a', 'b': b'\b', '\\': b'\\', '"': b'"'}


def monitor_arguments(text):
    """The arguments of one MONITOR line's command, as Redis quoted them (sdscatrepr)."""
    arguments, i = [], 0
    while i < len(text):
        if text[i] == ' ':
            i += 1
            continue
        if text[i] != '"':
            raise ValueError('unquoted argument')
        i += 1
        argument = bytearray()
        while text[i] != '"':
            if text[i] == '\\':
                if text[i + 1] == 'x':
                    argument.append(int(text[i + 2:i + 4], 16))
                    i += 4
                    continue
                argument += ESCAPES.get(text[i + 1], text[i + 1].encode('latin-1'))
                i += 2
                continue
            argument += text[i].encode('latin-1')
            i += 1
        i += 1
        arguments.append(bytes(argument))
    return arguments


def encode(arguments):
    out = b'*%d\r\n' % len(arguments)
    for argument in arguments:
        out += b'$%d\r\n%s\r\n' % (len(argument), argument)
    return out


def to_resp(monitor_file, out_file):
    count = 0
    with open(out_file, 'wb') as out:
        for line in open(monitor_file, encoding='latin-1'):
            # "<time> [<db> <client>] "CMD" ..." from clients; "[<db> lua] ..." for what scripts ran.
            if '] "' not in line or ' lua] ' in line:
                continue
            try:
                arguments = monitor_arguments(line.rstrip('\n').split('] ', 1)[1])
            except (ValueError, IndexError):
                continue
            if not arguments or arguments[0].upper() in SKIP:
                continue
            out.write(encode(arguments))
            count += 1
    print(count)


def reply_end(data, i):
    """The index just past the reply starting at i; IndexError or ValueError while it is incomplete."""
    kind, line_end = data[i:i + 1], data.index(b'\r\n', i)
    if kind in (b'+', b'-', b':', b',', b'_', b'#'):
        return line_end + 2
    if kind == b'$':
        size = int(data[i + 1:line_end])
        if size < 0:
            return line_end + 2
        if len(data) < line_end + 2 + size + 2:
            raise IndexError('incomplete')
        return line_end + 2 + size + 2
    if kind in (b'*', b'%', b'~'):
        count = int(data[i + 1:line_end]) * (2 if kind == b'%' else 1)
        at = line_end + 2
        for _ in range(max(0, count)):
            at = reply_end(data, at)
        return at
    raise ValueError('unknown reply type %r' % kind)


def commands(resp):
    at = 0
    while at < len(resp):
        line_end = resp.index(b'\r\n', at)
        end = line_end + 2
        for _ in range(int(resp[at + 1:line_end])):
            size_end = resp.index(b'\r\n', end)
            end = size_end + 2 + int(resp[end + 1:size_end]) + 2
        yield resp[at:end]
        at = end


def send(port, resp_file, gap_ms):
    connection = socket.create_connection(('127.0.0.1', port))
    pending, sent = b'', 0
    for command in commands(open(resp_file, 'rb').read()):
        connection.sendall(command)
        while True:
            try:
                pending = pending[reply_end(pending, 0):]
                break
            except (IndexError, ValueError):
                pending += connection.recv(1 << 16)
        sent += 1
        if gap_ms > 0:
            time.sleep(gap_ms / 1000)
    print(sent)


if __name__ == '__main__':
    if sys.argv[1] == 'to-resp':
        to_resp(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == 'send':
        send(int(sys.argv[2]), sys.argv[3], float(sys.argv[4]))
    else:
        sys.exit('usage: replay.py to-resp MONITOR OUT | send PORT RESP GAP_MS')
