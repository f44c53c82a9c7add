package llmtail.writer;

import ch.qos.logback.classic.spi.ThrowableProxy;
import ch.qos.logback.classic.spi.ThrowableProxyUtil;
import java.util.LinkedHashMap;
import java.util.Map;
import org.slf4j.Logger;

/**
 * One record to write and, once written, what logback was asked to log: the truth a test compares
 * the parser's output with. Services fill it in at the call site.
 */
public final class Rec {
    public final long seq;
    public final java.util.Random rnd;
    public String thread;
    public String traceId;
    public String level;
    public String logger;
    public String method;
    public int line;
    public String message;
    public String throwable;
    public Map<String, Object> payload;
    public long tsMinMs;
    public long tsMaxMs;

    public Rec(long seq, java.util.Random rnd) {
        this.seq = seq;
        this.rnd = rnd;
    }

    /** Records the caller's method and line; call it on the same source line as the log call. */
    public void here() {
        StackTraceElement site = new Throwable().getStackTrace()[1];
        method = site.getMethodName();
        line = site.getLineNumber();
    }

    public void logged(String lvl, Logger log, String msg) {
        level = lvl;
        logger = log.getName();
        message = msg;
    }

    public void logged(String lvl, Logger log, String msg, Throwable t) {
        logged(lvl, log, msg);
        throwable = ThrowableProxyUtil.asString(new ThrowableProxy(t));
    }

    public Map<String, Object> newPayload() {
        payload = new LinkedHashMap<>();
        return payload;
    }

    /** One JSON object; non-ASCII is escaped so the sidecar is encoding-proof. */
    public String toJson() {
        StringBuilder sb = new StringBuilder(256);
        sb.append('{');
        field(sb, "seq", seq).append(',');
        field(sb, "level", level).append(',');
        field(sb, "logger", logger).append(',');
        field(sb, "method", method).append(',');
        field(sb, "line", line).append(',');
        field(sb, "thread", thread).append(',');
        field(sb, "trace_id", traceId == null ? "" : traceId).append(',');
        field(sb, "message", message).append(',');
        field(sb, "throwable", throwable).append(',');
        field(sb, "ts_min_ms", tsMinMs).append(',');
        field(sb, "ts_max_ms", tsMaxMs).append(',');
        sb.append("\"payload\":");
        if (payload == null) {
            sb.append("null");
        } else {
            sb.append('{');
            boolean first = true;
            for (Map.Entry<String, Object> e : payload.entrySet()) {
                if (!first) {
                    sb.append(',');
                }
                first = false;
                field(sb, e.getKey(), e.getValue());
            }
            sb.append('}');
        }
        return sb.append('}').toString();
    }

    private static StringBuilder field(StringBuilder sb, String key, Object value) {
        quote(sb, key).append(':');
        if (value == null) {
            return sb.append("null");
        }
        if (value instanceof Number) {
            return sb.append(value);
        }
        return quote(sb, value.toString());
    }

    private static StringBuilder quote(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '"' || c == '\\') {
                sb.append('\\').append(c);
            } else if (c < 0x20 || c > 0x7e) {
                sb.append(String.format("\\u%04x", (int) c));
            } else {
                sb.append(c);
            }
        }
        return sb.append('"');
    }
}
