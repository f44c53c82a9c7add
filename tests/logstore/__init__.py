"""A local SLS Logstore for tests and benchmarks (design.md section 7).

`LocalLogstore` is an HTTP server on 127.0.0.1 that a real aliyun-log-python-sdk `LogClient`
cannot tell from SLS for PutLogs (`POST /logstores/{logstore}/shards/lb|route`). It checks, with
the status and errorCode SLS answers:

- the project from `Host: {project}.{endpoint}` (a bare IP Host, or the endpoint name itself,
  means the default project): 404 ProjectNotExist; the logstore: 404 LogStoreNotExist (both
  changeable at runtime);
- the v1 signature: 401 InvalidAccessKeyId, 401 SignatureNotMatch; STS tokens
  (`x-acs-security-token`): 401 Unauthorized "...token...is invalid." / "...has expired.";
- `Date` within 15 minutes: 400 RequestTimeExpired; Content-MD5: 400 InvalidContentMD5;
  `x-log-bodyrawsize`: 400 MissingBodyRawSize / InvalidBodyRawSize; raw body over 10 MB:
  413 PostBodyTooLarge; lz4 (raw block), zstd, deflate or none, else 400 InvalidCompressType;
  a corrupt body: 400 PostBodyUncompressError / PostBodyInvalid;
- the LogGroup: more than 4096 logs: 400 PostBodyTooLarge; a value over 1 MB: 400
  PostBodyInvalid; a key not `[A-Za-z_][A-Za-z0-9_]{0,127}` or reserved (`__time__`,
  `__topic__`, `__source__`, ...): 400 InvalidKey; any log time outside [now - 7 d,
  now + 15 min]: 400 PostBodyInvalid "The post data time is out of range" (whole request).

It answers 200 with an empty body and `x-log-requestid`; errors are JSON
`{"errorCode", "errorMessage"}` with `x-log-requestid`.

The admin API `llmtail provision` uses is served too (signed, see `catalog`): logstores
(`POST/GET/PUT /logstores[/{name}]`), the index (`/logstores/{name}/index`), dashboards, alerts
(`/jobs`), saved searches and alert resource records, with SLS's checks and error codes;
`server.catalog.writes` lists every write it accepted.

Faults (`server.faults`, a `FaultPlan`): `fail(code, count=, probability=, seconds=)` with
InternalServerError, ServerBusy, WriteQuotaExceed, ShardWriteQuotaExceed, Unauthorized,
TokenExpired (or any code with `status=`); `delay(s, ...)`; `drop(after_store=False, ...)`
closes the connection unanswered, before storing or after (a duplicate, as in real life);
`server.outage(seconds, refuse=True)` closes the listener and reopens it on the same port,
`refuse=False` keeps listening but drops every PutLogs connection for the window.

Admin HTTP API (same port; no signature; JSON in and out):

    GET    /_llmtail/stats                     counters (requests, accepted_logs, rejected{code})
    GET    /_llmtail/records[?project=&logstore=]   {"records": [{key: value}, ...]}
    GET    /_llmtail/groups[?project=&logstore=]    {"groups": [{topic, source, tags, logs}]}
    POST   /_llmtail/faults   {"kind": "error|drop|drop_after_store|delay", "code", "status",
                               "message", "delay", "count", "probability", "seconds"}
                              (no count: once, or for the whole window / fraction)
    DELETE /_llmtail/faults                    clear all rules
    POST   /_llmtail/logstores {"project", "logstore"}   create; DELETE with the same: remove
    POST   /_llmtail/expire-token {"token"}
    POST   /_llmtail/credentials {"access_key_id", "access_key_secret", "security_token"}
                              accept this key too (e.g. STS credentials a RAM role was issued)
    POST   /_llmtail/outage {"seconds", "refuse": true}
    POST   /_llmtail/reset                     forget data, counters and faults

The SDK reaches a project by name, `{project}.{endpoint}`, and cannot reach `127.0.0.1:PORT`
(it would look up `{project}.127.0.0.1`). So SDK clients are given `sdk_endpoint`
(`sls.llmtail.test:PORT`, a `.test` name that never resolves) and reach the server as their HTTP
proxy: `sdk_env()` (`http_proxy`, which `requests` honours), the `sdk_logstore` fixture, or
`client.sdk_route`. The request then arrives in absolute form (`POST
http://{project}.sls.llmtail.test:PORT/...`) and the project is read from its target, exactly as
SLS reads it from the name. llmtail's own PutLogs client is given `endpoint` and posts directly.

Run it as a process with `python -m tests.logstore --port 0 ...` (see `__main__`). With
`count_only=True` (`--count-only`) it counts what it accepts and keeps nothing, for benchmarks:
it frames each LogGroup and decodes only its first and last logs (`codec.count_group`), so that
it never limits the agent it measures.

Not confirmed by public SLS sources, so chosen here: the code for a Content-MD5 mismatch
(InvalidContentMD5), for a value over 1 MB (PostBodyInvalid) and for more than 4096 logs (400
PostBodyTooLarge, from the older PutLogs reference).
"""

from tests.logstore.codec import StoredLog, StoredLogGroup
from tests.logstore.errors import SlsError
from tests.logstore.faults import FaultKind, FaultPlan, FaultRule
from tests.logstore.server import LocalLogstore
from tests.logstore.sls import Credential
from tests.logstore.store import Stats

__all__ = [
    "Credential",
    "FaultKind",
    "FaultPlan",
    "FaultRule",
    "LocalLogstore",
    "SlsError",
    "Stats",
    "StoredLog",
    "StoredLogGroup",
]
