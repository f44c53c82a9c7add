package com.example.gateway.web;

import java.util.concurrent.CompletionException;
import llmtail.writer.Rec;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Records whose logger names or messages are hostile to a naive parser. */
public class DispatchFilter {
    /** Tomcat names its loggers with brackets; logback abbreviates them to o.a.c.c.C.[.[.[/]. */
    private static final Logger tomcat =
        LoggerFactory.getLogger("org.apache.catalina.core.ContainerBase.[Tomcat].[localhost].[/]");
    private static final Logger audit = LoggerFactory.getLogger("audit");

    public void doFilter(Rec r) {
        try {
            invoke(r);
        } catch (CompletionException e) {
            String msg = "Servlet.service() for servlet [dispatcherServlet] in context with path [] threw exception "
                + "[Request processing failed; nested exception is java.lang.IllegalStateException: seq=" + r.seq
                + "] with root cause";
            r.here(); tomcat.error(msg, e);
            r.logged("ERROR", tomcat, msg, e);
        }
    }

    public void hostile(Rec r) {
        String msg = "seq=" + r.seq + " user said: [traceId:fake] [c.a.Fake#m():1] [t] - 2025-07-09 14:23:24.748 INFO  x";
        r.here(); audit.info(msg);
        r.logged("INFO", audit, msg);
    }

    private void invoke(Rec r) {
        try {
            render(r);
        } catch (IllegalArgumentException e) {
            throw new CompletionException(new IllegalStateException("Request processing failed", e));
        }
    }

    private void render(Rec r) {
        throw new IllegalArgumentException(
            "Invalid prompt template for seq " + r.seq + ":\n  line 3: unknown variable {user}\nat template 'chat'");
    }
}
