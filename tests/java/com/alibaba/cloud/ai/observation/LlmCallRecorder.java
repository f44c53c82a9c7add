package com.alibaba.cloud.ai.observation;

import java.util.Map;
import llmtail.writer.Rec;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Writes the 12-field llm_call payload: the record llmtail exists for. */
public class LlmCallRecorder {
    private static final Logger log = LoggerFactory.getLogger(LlmCallRecorder.class);

    private static final String[] MODELS = {"qwen-max", "qwen-plus", "qwen-turbo", "deepseek-r1"};
    private static final String[] MODULES = {"chat", "rag", "agent"};
    private static final String[][] ERRORS = {
        {"429", "Throttling.RateQuota", "Requests rate limit exceeded, please try again later."},
        {"400", "InvalidParameter", "Range of input length should be [1, 30720], got 31000"},
        {"500", "InternalError.Algo", "An internal error has occured, please try again later or contact service support."},
        {"400", "DataInspectionFailed", "输入数据可能包含不适当的内容，请修改后重试"},
        {"503", "ServiceUnavailable", ""},
    };

    public void record(Rec r) {
        Map<String, Object> p = r.newPayload();
        p.put("app", "qwen-chat-service");
        p.put("module", MODULES[r.rnd.nextInt(MODULES.length)]);
        p.put("model", MODELS[r.rnd.nextInt(MODELS.length)]);
        p.put("workspace", r.rnd.nextInt(4) == 0 ? "default" : String.format("llm-%08x", r.rnd.nextInt()));
        // 8-4-4-4-12 hex like DashScope's, but not a valid UUID; the last group carries the seq.
        p.put("request_id", String.format("%08x-%04x-%04x-%04x-%012d", r.rnd.nextInt(), r.rnd.nextInt(0x10000),
            r.rnd.nextInt(0x10000), r.rnd.nextInt(0x10000), r.seq));
        boolean failed = r.rnd.nextInt(4) == 0;
        String[] err = failed ? ERRORS[r.rnd.nextInt(ERRORS.length)] : new String[] {"200", "", ""};
        int in = failed ? 0 : r.rnd.nextInt(4000);
        int out = failed ? 0 : r.rnd.nextInt(2000);
        p.put("status_code", Integer.parseInt(err[0]));
        p.put("duration_ms", r.rnd.nextInt(30000));
        p.put("input_tokens", in);
        p.put("output_tokens", out);
        p.put("total_tokens", in + out);
        p.put("error_code", err[1]);
        p.put("error_message", err[2]);
        StringBuilder sb = new StringBuilder();
        for (Object v : p.values()) {
            if (sb.length() > 0) {
                sb.append(',');
            }
            sb.append(v);
        }
        String msg = sb.toString();
        if (failed) {
            r.here(); log.warn(msg);
            r.logged("WARN", log, msg);
        } else {
            r.here(); log.info(msg);
            r.logged("INFO", log, msg);
        }
    }
}
