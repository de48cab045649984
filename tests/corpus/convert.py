#!/usr/bin/env python3
"""Regenerates cases.txt from the upstream files in llhttp/ and
desync-guardian/ (run by hand: `python3 tests/corpus/convert.py`; needs
PyYAML). The test reads cases.txt only.

cases.txt: one case per two lines,
    @ TIER MESSAGES PAD SOURCE:LINE NAME...
    RAW
RAW is the request bytes with \\r \\n \\t \\\\ and \\xHH escapes; PAD more
bytes `x` follow it (the body of a `Content-Length: PAD` request, kept out
of the file). MESSAGES is the number of requests the source parser
completes (llhttp: "message complete" lines in the log; desync-guardian: 1).

Tiers:
  llhttp-accept    llhttp parses every byte without an error
  llhttp-reject    llhttp stops with an error (other than "Pause on
                   CONNECT/Upgrade", which is llhttp handing the connection
                   over, not a rejection)
  llhttp-upgrade   llhttp hands the connection over (CONNECT, Upgrade)
  dg-compliant, dg-acceptable, dg-ambiguous, dg-severe
                   desync-guardian's expected tier

llhttp: only cases of type "request" (the default parser; the
request-lenient-* types turn on leniency flags). The raw bytes are derived as
llhttp's test/md-test.ts does (trailing newline dropped, newlines -> CRLF,
\\r \\n \\t \\f \\xHH and octal escapes).

desync-guardian: the request is written as `METHOD URI VERSION` and one
`name: value` line per header, as the yaml gives them; `Host: example.com`
is added first when the case has no Host field (limpet refuses HTTP/1.1
without Host, and the host is not what these cases test). A body is added
so that a request limpet accepts is complete: N bytes for a plain
`Content-Length: N`, else a small chunked body when Transfer-Encoding names
chunked (at most 16 MiB; a larger length is refused anyway).
"""
import glob
import json
import os
import re

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))


def escape(raw: bytes) -> str:
    out = []
    for b in raw:
        c = chr(b)
        if c == '\\':
            out.append('\\\\')
        elif c == '\r':
            out.append('\\r')
        elif c == '\n':
            out.append('\\n')
        elif c == '\t':
            out.append('\\t')
        elif 0x20 <= b < 0x7f:
            out.append(c)
        else:
            out.append('\\x%02x' % b)
    return ''.join(out)


def llhttp_input(block: str) -> bytes:
    s = block[:-1] if block.endswith('\n') else block  # JS /\n$/: one only
    s = re.sub(r'\\(\r\n|\r|\n)', '', s)
    s = re.sub(r'\r\n|\r|\n', '\r\n', s)
    s = s.replace('\\r', '\r').replace('\\n', '\n').replace('\\t', '\t').replace('\\f', '\f')
    s = re.sub(r'\\x([0-9a-fA-F]+)', lambda m: chr(int(m.group(1), 16)), s)
    s = re.sub(r'\\([0-7]{1,3})', lambda m: chr(int(m.group(1), 8)), s)
    assert '${' not in s
    return encode(s)


def llhttp_cases():
    for path in sorted(glob.glob(os.path.join(HERE, 'llhttp', '*.md'))):
        name = os.path.basename(path)
        lines = open(path, encoding='utf-8').read().split('\n')
        heading, meta, meta_line, http, i = None, None, 0, None, 0
        while i < len(lines):
            line = lines[i]
            if line.startswith('#'):
                heading = line.lstrip('#').strip()
            elif i + 1 < len(lines) and re.match(r'^[=-]{3,}$', lines[i + 1]) and line.strip():
                heading = line.strip()
            m = re.match(r'<!--\s*meta=(\{.*\})\s*-->', line)
            if m:
                meta, meta_line, http = json.loads(m.group(1)), i + 1, None
            elif line.startswith('```http') or line.startswith('```log'):
                kind = line[3:].strip()
                j = i + 1
                body = []
                while lines[j] != '```':
                    body.append(lines[j])
                    j += 1
                text = '\n'.join(body) + '\n'
                if kind == 'http':
                    http = text
                elif meta is not None and http is not None:
                    if meta.get('type') == 'request':
                        raw = llhttp_input(http)
                        errors = re.findall(r'error code=(\d+) reason="([^"]*)"', text)
                        messages = text.count('message complete')
                        if errors and errors[0][0] in ('22', '23'):
                            tier = 'llhttp-upgrade'
                        elif errors:
                            tier = 'llhttp-reject'
                        else:
                            tier = 'llhttp-accept'
                        yield tier, messages, 0, f'llhttp/{name}:{meta_line}', heading, raw
                    meta, http = None, None
                i = j
            i += 1


def encode(s: str) -> bytes:
    """UTF-8 for text beyond Latin-1 (e.g. a Greek method name), else one
    byte per character, so that \\xHH escapes stay single bytes."""
    return s.encode('utf-8') if any(ord(c) > 0xff for c in s) else s.encode('latin-1')


def yaml_str(v) -> bytes:
    return encode(str(v))


def dg_cases():
    for path in sorted(glob.glob(os.path.join(HERE, 'desync-guardian', '*.yaml'))):
        name = os.path.basename(path)
        text = open(path, encoding='utf-8').read()
        starts = [n + 1 for n, l in enumerate(text.split('\n')) if l.startswith('- name:')]
        for line, case in zip(starts, yaml.safe_load(text)):
            tier = 'dg-' + case['expected']['tier'].lower()
            headers = case.get('headers') or []
            head = yaml_str(case['method']) + b' ' + yaml_str(case['uri'])
            if case.get('version'):
                head += b' ' + yaml_str(case['version'])
            head += b'\r\n'
            if not any(str(h['name']).strip().lower() == 'host' for h in headers):
                head += b'Host: example.com\r\n'
            body, pad = b'', 0
            for h in headers:
                head += yaml_str(h['name']) + b': ' + yaml_str(h['value']) + b'\r\n'
                value = str(h['value']).strip()
                if str(h['name']).lower() == 'content-length' and value.isdigit():
                    pad = int(value)
                if str(h['name']).lower() == 'transfer-encoding' and 'chunked' in value.lower():
                    body = b'5\r\nhello\r\n0\r\n\r\n'
            pad = pad if pad <= 1 << 24 else 0
            yield tier, 1, pad, f'desync-guardian/{name}:{line}', case['name'], head + b'\r\n' + body


def main():
    out = ['# Generated by convert.py from llhttp/*.md and desync-guardian/*.yaml; do not edit.']
    for tier, messages, pad, where, name, raw in list(llhttp_cases()) + list(dg_cases()):
        name = ' '.join(str(name).split())
        out.append(f'@ {tier} {messages} {pad} {where} {name}')
        out.append(escape(raw))
    with open(os.path.join(HERE, 'cases.txt'), 'w', encoding='utf-8') as f:
        f.write('\n'.join(out) + '\n')


if __name__ == '__main__':
    main()
