"""The processes under test and their configurations: the neutral nginx
origin, limpet, HAProxy and nginx as proxies. Every configuration is written
into the run's temporary directory; nothing touches system config dirs.

Parity between proxies: one worker/thread, keep-alive on both legs, no
access log, two backend servers (two ports of the one origin), a SERVERID
sticky cookie (inserted by limpet and HAProxy, hashed by nginx, which has no
cookie insertion)."""
import os

import processes

CLIENT_KEEPALIVE = "300s"


def body_path(size):
    """The origin path that answers `size` bytes of body."""
    return f"/{size}"


class Server:
    """One process under test, listening on 127.0.0.1:port."""

    def __init__(self, label, argv, port, cpus, tmp, env=None):
        self.label, self.argv, self.port, self.cpus = label, argv, port, cpus
        self.log = os.path.join(tmp, f"{label}.log")
        self.env = env or {}
        self.child = None

    @property
    def pid(self):
        return self.child.pid

    def start(self, prefix=(), timeout=60.0):
        self.child = processes.start(self.argv, self.cpus, self.log, prefix, self.env)
        processes.wait_for_port(self.child, self.port, self.log, timeout)
        return self

    def stop(self):
        if self.child is not None:
            processes.stop(self.child)
            self.child = None


def _write(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def _nginx_process_block(tmp, label):
    """Foreground, single process (no master), so that its PID is the one
    serving; every path it may write under tmp."""
    return f"""daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 20000;
pid {tmp}/{label}.pid;
error_log {tmp}/{label}.error.log warn;
events {{ worker_connections 19000; }}
"""


def _nginx_http_common(tmp, label):
    return f"""  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout {CLIENT_KEEPALIVE};
  client_body_temp_path {tmp}/{label}.body;
  proxy_temp_path {tmp}/{label}.proxy;
  fastcgi_temp_path {tmp}/{label}.fastcgi;
  uwsgi_temp_path {tmp}/{label}.uwsgi;
  scgi_temp_path {tmp}/{label}.scgi;
"""


def _nginx_argv(tmp, config):
    return ["nginx", "-p", tmp + "/", "-e", f"{tmp}/nginx-startup.error.log", "-c", config]


def _fixed_body_location(size, piece=2048):
    """`return 200` with `size` bytes. nginx refuses config tokens over 4 KiB,
    so larger bodies are a literal remainder plus repeats of a 2 KiB
    variable set in the same location."""
    if size <= piece:
        return f'    location = {body_path(size)} {{ return 200 "{"x" * size}"; }}\n'
    body = "$piece" * (size // piece) + "x" * (size % piece)
    return (
        f'    location = {body_path(size)} {{ set $piece "{"x" * piece}"; return 200 "{body}"; }}\n'
    )


def origin(tmp, label, cpus, body_sizes, ports=2):
    """nginx answering `return 200` with a fixed body of each size at
    /SIZE, on `ports` ports (the proxies' two backend servers)."""
    port_list = [processes.free_port() for _ in range(ports)]
    listens = "".join(f"    listen 127.0.0.1:{p};\n" for p in port_list)
    locations = "".join(_fixed_body_location(size) for size in body_sizes)
    locations += '    location / { return 200 "ok\\n"; }\n'
    config = _write(tmp, f"{label}.conf", f"""{_nginx_process_block(tmp, label)}
http {{
{_nginx_http_common(tmp, label)}  default_type text/plain;
  server {{
{listens}{locations}  }}
}}
""")
    server = Server(label, _nginx_argv(tmp, config), port_list[0], cpus, tmp)
    server.ports = port_list
    return server


def tls_certificate(tmp):
    """One ECDSA P-256 certificate for 127.0.0.1 and bench.test, made with
    openssl for this run: (cert, key, cert+key in one file for HAProxy)."""
    cert, key = os.path.join(tmp, "bench.pem"), os.path.join(tmp, "bench.key")
    processes.run([
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-days", "2", "-subj", "/CN=bench.test",
        "-addext", "subjectAltName=DNS:bench.test,IP:127.0.0.1", "-keyout", key, "-out", cert,
    ], "1")
    combined = os.path.join(tmp, "bench-combined.pem")
    with open(combined, "w") as out:
        for part in (cert, key):
            with open(part) as f:
                out.write(f.read())
    return cert, key, combined


def limpet(tmp, binary, backends, workers=1, driver="auto", label=None, tls=None):
    """limpet in insert mode, `workers` workers pinned to CPUs 0..workers-1;
    `tls` = (cert, key) makes its listener HTTPS."""
    label = label or f"limpet-{workers}w-{driver}"
    tls_line = f'tls = {{ certs = [{{ cert = "{tls[0]}", key = "{tls[1]}" }}] }}\n' if tls else ""
    port = processes.free_port()
    cpus = list(range(workers))
    servers = "".join(
        f'\n[[groups.web.servers]]\nname = "web{i}"\naddress = "127.0.0.1:{p}"\n'
        for i, p in enumerate(backends, 1)
    )
    config = _write(tmp, f"{label}.toml", f"""[workers]
count = {workers}
cpus = {cpus}
driver = "{driver}"

[[listeners]]
name = "bench"
listen = "127.0.0.1:{port}"
default_group = "web"
{tls_line}
[timeouts]
client_idle = "{CLIENT_KEEPALIVE}"

[groups.web]
balance = "round_robin"

[groups.web.persistence]
mode = "insert"
cookie = "SERVERID"
cors = false
{servers}""")
    cpu_list = ",".join(map(str, cpus))
    return Server(label, [binary, "run", "--config", config], port, cpu_list, tmp, env={"LIMPET_LOG": "warn"})


def haproxy(tmp, backends, label="haproxy", tls=None, http2=False):
    """HAProxy, one thread, cookie insertion, backend connections reused;
    `tls` = a cert+key PEM file makes its frontend HTTPS. `http2`: the
    plain bind speaks h2c only (`proto h2`), the TLS bind offers ALPN
    `h2,http/1.1`."""
    port = processes.free_port()
    alpn = "h2,http/1.1" if http2 else "http/1.1"
    ssl = f" ssl crt {tls} alpn {alpn}" if tls else (" proto h2" if http2 else "")
    servers = "".join(
        f"  server web{i} 127.0.0.1:{p} cookie web{i}\n" for i, p in enumerate(backends, 1)
    )
    config = _write(tmp, f"{label}.cfg", f"""global
  nbthread 1
  maxconn 9000

defaults
  mode http
  timeout connect 5s
  timeout client {CLIENT_KEEPALIVE}
  timeout server {CLIENT_KEEPALIVE}
  timeout http-keep-alive {CLIENT_KEEPALIVE}
  http-reuse always

frontend bench
  bind 127.0.0.1:{port}{ssl}
  default_backend web

backend web
  balance roundrobin
  cookie SERVERID insert indirect nocache
{servers}""")
    return Server(label, ["haproxy", "-db", "-f", config], port, "0", tmp)


def nginx_proxy(tmp, backends, label="nginx", http2=False, tls=None):
    """nginx as a proxy, one worker, consistent hash of the SERVERID cookie,
    keep-alive upstream connections. `http2` adds `http2` to the listen
    (nginx 1.22: on a plain port, h2c with prior knowledge only); `tls` =
    (cert, key) makes it HTTPS."""
    port = processes.free_port()
    listen = f"127.0.0.1:{port}{' ssl' if tls else ''}{' http2' if http2 else ''}"
    certificate = f"    ssl_certificate {tls[0]};\n    ssl_certificate_key {tls[1]};\n" if tls else ""
    servers = "".join(f"    server 127.0.0.1:{p};\n" for p in backends)
    config = _write(tmp, f"{label}.conf", f"""{_nginx_process_block(tmp, label)}
http {{
{_nginx_http_common(tmp, label)}
  upstream web {{
    hash $cookie_SERVERID consistent;
{servers}    keepalive 64;
    keepalive_requests 1000000;
    keepalive_timeout {CLIENT_KEEPALIVE};
  }}
  server {{
    listen {listen};
{certificate}    location / {{
      proxy_pass http://web;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
""")
    return Server(label, _nginx_argv(tmp, config), port, "0", tmp)
