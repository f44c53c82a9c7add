package llmtail.writer;

import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.core.status.Status;
import com.alibaba.cloud.ai.observation.LlmCallRecorder;
import com.alibaba.cloud.service.impl.ChatServiceImpl;
import com.example.gateway.web.DispatchFilter;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.Random;
import org.slf4j.LoggerFactory;
import org.slf4j.MDC;

/**
 * Writes seed-format records through real logback so llmtail's tests read what users' apps write.
 *
 * <p>Usage: LlmLogWriter --mode plain|async|rolling-gz|rolling-plain --dir DIR [--records N (0: until
 * SIGTERM)] [--rate R records/s (0: flat out)] [--start SEQ] [--seed S] [--truth FILE.jsonl].
 * System property llmtail.maxFileSize sets the rolling size (default 64KB).
 */
public final class LlmLogWriter {
    private static final String[] THREADS = {
        "main", "http-nio-8080-exec-7", "DashScope-Worker [chat] #3", "reactor-http-epoll-2",
        "pool-4-thread-1", "", "[consumer] llm callbacks", "线程-1",
    };

    private static volatile boolean running = true;

    private LlmLogWriter() {}

    public static void main(String[] args) throws Exception {
        String mode = null;
        String dir = null;
        String truthPath = null;
        long records = 1000;
        double rate = 0;
        long start = 1;
        long seed = 1;
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--mode": mode = args[i + 1]; break;
                case "--dir": dir = args[i + 1]; break;
                case "--truth": truthPath = args[i + 1]; break;
                case "--records": records = Long.parseLong(args[i + 1]); break;
                case "--rate": rate = Double.parseDouble(args[i + 1]); break;
                case "--start": start = Long.parseLong(args[i + 1]); break;
                case "--seed": seed = Long.parseLong(args[i + 1]); break;
                default: usage("unknown option " + args[i]);
            }
        }
        if (mode == null || dir == null || args.length % 2 != 0) {
            usage("--mode and --dir are required");
        }
        // Set before the first LoggerFactory call: logback reads them when it configures itself.
        System.setProperty("llmtail.dir", dir);
        System.setProperty("logback.configurationFile", "logback-" + mode + ".xml");
        if (LlmLogWriter.class.getClassLoader().getResource("logback-" + mode + ".xml") == null) {
            usage("unknown mode " + mode);
        }
        LoggerContext ctx = (LoggerContext) LoggerFactory.getILoggerFactory();
        for (Status s : ctx.getStatusManager().getCopyOfStatusList()) {
            if (s.getLevel() >= Status.WARN) {
                System.err.println("logback: " + s);
                System.exit(3);
            }
        }
        Writer truth = truthPath == null ? null
            : new BufferedWriter(new OutputStreamWriter(Files.newOutputStream(Paths.get(truthPath)), StandardCharsets.UTF_8));

        Thread mainThread = Thread.currentThread();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            running = false;
            try {
                mainThread.join(5000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            ctx.stop();  // drains the AsyncAppender, waits for a background gzip
        }, "shutdown"));

        ChatServiceImpl chat = new ChatServiceImpl();
        LlmCallRecorder recorder = new LlmCallRecorder();
        DispatchFilter filter = new DispatchFilter();
        long t0 = System.nanoTime();
        long written = 0;
        for (long seq = start; running && (records <= 0 || seq < start + records); seq++) {
            if (rate > 0) {
                long due = t0 + (long) ((seq - start) * 1e9 / rate);
                long wait = due - System.nanoTime();
                if (wait > 0) {
                    Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
                }
            }
            Rec r = new Rec(seq, new Random(mix(seed, seq)));
            r.thread = THREADS[r.rnd.nextInt(THREADS.length)];
            r.traceId = traceId(r.rnd);
            Thread.currentThread().setName(r.thread);
            if (r.traceId.isEmpty()) {
                MDC.remove("traceId");
            } else {
                MDC.put("traceId", r.traceId);
            }
            r.tsMinMs = System.currentTimeMillis();
            int kind = r.rnd.nextInt(100);
            if (kind < 35) {
                recorder.record(r);
            } else if (kind < 55) {
                chat.chat(r);
            } else if (kind < 65) {
                chat.prompt(r);
            } else if (kind < 75) {
                chat.result(r);
            } else if (kind < 83) {
                chat.retry(r);
            } else if (kind < 88) {
                filter.doFilter(r);
            } else if (kind < 94) {
                chat.trace(r);
            } else {
                filter.hostile(r);
            }
            r.tsMaxMs = System.currentTimeMillis();
            if (truth != null) {
                truth.write(r.toJson());
                truth.write('\n');
            }
            written++;
        }
        Thread.currentThread().setName("main");
        if (truth != null) {
            truth.close();
        }
        System.out.println("wrote " + written + " records from seq " + start);
        System.out.flush();
    }

    /** Decorrelates consecutive seqs (java.util.Random's first draws follow close seeds). */
    private static long mix(long seed, long seq) {
        long z = seed * 0x9E3779B97F4A7C15L + seq;
        z = (z ^ (z >>> 33)) * 0xff51afd7ed558ccdL;
        z = (z ^ (z >>> 33)) * 0xc4ceb9fe1a85ec53L;
        return z ^ (z >>> 33);
    }

    private static String traceId(Random rnd) {
        switch (rnd.nextInt(4)) {
            case 0: return "";
            case 1: return String.format("%08x.%d.%d", rnd.nextInt(), rnd.nextInt(200), 17000000000000L + rnd.nextInt(1 << 30));
            default: return String.format("%016x%016x", rnd.nextLong(), rnd.nextLong());
        }
    }

    private static void usage(String why) {
        System.err.println("LlmLogWriter: " + why);
        System.exit(2);
    }
}
