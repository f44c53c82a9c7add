package com.alibaba.cloud.service.impl;

import java.io.IOException;
import java.net.SocketTimeoutException;
import llmtail.writer.Rec;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** A chat service as LLM apps write them: a long package, so %c{3} abbreviates it. */
public class ChatServiceImpl {
    private static final Logger log = LoggerFactory.getLogger(ChatServiceImpl.class);

    /** Nested class: its name carries a '$' into the stack trace. */
    public static class QuotaExceededException extends RuntimeException {
        public QuotaExceededException(String message, Throwable cause) {
            super(message, cause);
        }
    }

    public void chat(Rec r) {
        if (r.rnd.nextInt(3) == 0) {
            Runnable task = () -> {
                String msg = "seq=" + r.seq + " streamed " + r.rnd.nextInt(200) + " chunks to the client";
                r.here(); log.info(msg);
                r.logged("INFO", log, msg);
            };
            task.run();
            return;
        }
        int session = r.rnd.nextInt(9999);
        int ms = r.rnd.nextInt(5000);
        String msg = "seq=" + r.seq + " chat completed for session s-" + session + " in " + ms + " ms";
        r.here(); log.info("seq={} chat completed for session s-{} in {} ms", r.seq, session, ms);
        r.logged("INFO", log, msg);
    }

    public void prompt(Rec r) {
        StringBuilder sb = new StringBuilder("prompt: seq=").append(r.seq).append(" user=u").append(r.rnd.nextInt(1000));
        sb.append("\nSystem: You are a helpful assistant. Answer briefly.");
        sb.append("\n\nUser: 请介绍一下通义千问, and compare it with [other] models - in 3 points.");
        if (r.rnd.nextBoolean()) {
            sb.append("\n    indented line #").append(r.rnd.nextInt(10)).append(" [x] - y");
        }
        sb.append("\n");  // a message ending in a newline leaves an empty line in the file
        String msg = sb.toString();
        r.here(); log.debug(msg);
        r.logged("DEBUG", log, msg);
    }

    public void result(Rec r) {
        StringBuilder sb = new StringBuilder("result: seq=").append(r.seq).append(' ');
        int shape = r.rnd.nextInt(30);
        if (shape == 0) {
            // a long answer on one line: larger than logback's 8 KB buffer, so it reaches the
            // file in several writes and a tailer can see half of it
            for (int i = 0; i < 1200; i++) {
                sb.append("第").append(i).append("段: lorem ipsum; ");
            }
        } else if (shape < 4) {
            for (int i = 0; i < 300; i++) {
                sb.append("token").append(i).append(", ");
            }
        } else {
            sb.append("通义千问是阿里云研发的大语言模型。");
            sb.append("\n1. It answers questions;\n2. it writes code, e.g. `a, b = b, a`;");
            sb.append("\n\n3. 2025-07-09 14:23:24.748 INFO  looks like a record start but is not at column 0");
        }
        String msg = sb.toString();
        r.here(); log.debug(msg);
        r.logged("DEBUG", log, msg);
    }

    public void retry(Rec r) {
        String msg = "seq=" + r.seq + " DashScope call failed, retrying (attempt " + (1 + r.rnd.nextInt(3)) + "/3)";
        try {
            callModel(r.rnd.nextInt(4));
        } catch (QuotaExceededException e) {
            r.here(); log.warn(msg, e);
            r.logged("WARN", log, msg, e);
        }
    }

    public void trace(Rec r) {
        String msg = "seq=" + r.seq + " token bucket refilled: " + r.rnd.nextInt(100) + " permits";
        r.here(); log.trace(msg);
        r.logged("TRACE", log, msg);
    }

    private void callModel(int depth) {
        try {
            readResponse(depth);
        } catch (SocketTimeoutException e) {
            QuotaExceededException wrapped = new QuotaExceededException("Requests rate limit exceeded, please try again later.", e);
            wrapped.addSuppressed(closeQuietly());
            throw wrapped;
        }
    }

    private void readResponse(int depth) throws SocketTimeoutException {
        if (depth <= 0) {
            throw new SocketTimeoutException("Read timed out");
        }
        readResponse(depth - 1);
    }

    private IOException closeQuietly() {
        return new IOException("Connection reset by peer while closing stream");
    }
}
