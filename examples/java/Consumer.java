// A leo-runtime partner in one file for Java 17+: consume a stream, verify a webhook signature.
// Nothing to install (java.net.http and the JDK only; a small JSON reader is at the bottom).
//
//   LEO_URL=https://leo.example.com LEO_TOKEN=leo_... java Consumer.java consume STREAM_ID [--max N]
//   java Consumer.java verify notification.json ...  # {"secret", "headers", "body"}: prints valid/invalid
//
// consume: one thread per partition. Each leases its partition (so a second copy of this program
// reads the other partitions, or waits to take over), long-polls for records, hands them to
// handle() and only then commits the checkpoint. If handle() throws, nothing is committed and the
// same records come back; if the program dies, the next run starts after the last commit. So a
// record may come twice: apply it by "version". Ctrl-C stops after the batch in hand is committed.

import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

public class Consumer {
    static final String BASE = System.getenv().getOrDefault("LEO_URL", "http://127.0.0.1:8765").replaceAll("/$", "");
    static final String TOKEN = System.getenv().getOrDefault("LEO_TOKEN", "");
    static final int LEASE_SECONDS = 30;
    static final int WAIT_SECONDS = Integer.parseInt(System.getenv().getOrDefault("LEO_WAIT", "10")); // a long poll
    static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(10)).build();
    static final AtomicBoolean stopping = new AtomicBoolean();
    static final AtomicLong handled = new AtomicLong();
    static long max = 0;

    // Your work: apply the records of one partition, in order. Throwing replays them.
    static synchronized void handle(int partition, List<?> records) {
        for (Object item : records) {
            Map<?, ?> record = (Map<?, ?>) item;
            // e.g. upsert(record.get("key"), record.get("version"), record.get("data"))
            System.out.println("{\"partition\":" + partition + ",\"key\":" + Json.write(record.get("key"))
                    + ",\"version\":" + Json.write(record.get("version")) + ",\"op\":" + Json.write(record.get("op")) + "}");
        }
        System.out.flush();
    }

    static class ApiError extends Exception {
        final int status;
        ApiError(int status, String detail) { super(status + ": " + detail); this.status = status; }
    }

    // One API call; 429 answers are waited out (Retry-After), errors become ApiError(status, detail).
    static Object api(String method, String path, Object body, String leaseId, int timeoutSeconds) throws Exception {
        for (int attempt = 0; ; attempt++) {
            HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(BASE + path))
                    .timeout(Duration.ofSeconds(timeoutSeconds)).header("Authorization", "Bearer " + TOKEN)
                    .method(method, body == null ? HttpRequest.BodyPublishers.noBody()
                            : HttpRequest.BodyPublishers.ofString(Json.write(body)));
            if (body != null) request.header("Content-Type", "application/json");
            if (leaseId != null) request.header("Lease-Id", leaseId);
            HttpResponse<String> response = HTTP.send(request.build(), HttpResponse.BodyHandlers.ofString());
            if (response.statusCode() == 429 && attempt < 5) {
                long seconds = response.headers().firstValue("retry-after").map(Long::parseLong).orElse(1L);
                Thread.sleep(1000 * Math.min(seconds, 60));
                continue;
            }
            if (response.statusCode() == 204) return null;
            Object data = Json.read(response.body());
            if (response.statusCode() >= 300) {
                throw new ApiError(response.statusCode(), String.valueOf(((Map<?, ?>) data).get("detail")));
            }
            return data;
        }
    }

    static void consumePartition(String streamId, int partition) {
        String base = "/v1/streams/" + URLEncoder.encode(streamId, StandardCharsets.UTF_8) + "/partitions/" + partition;
        String leaseId = null;
        long leasedAt = 0;
        String after = null; // null: read from the committed checkpoint
        while (!stopping.get()) {
            try {
                if (leaseId == null || System.currentTimeMillis() - leasedAt > LEASE_SECONDS * 1000 / 3) {
                    Map<?, ?> lease = (Map<?, ?>) api("POST", base + "/lease", Map.of("ttl_seconds", LEASE_SECONDS),
                            leaseId, 30);
                    if (!lease.get("lease_id").equals(leaseId)) after = null; // a new lease: from the checkpoint
                    leaseId = (String) lease.get("lease_id");
                    leasedAt = System.currentTimeMillis();
                }
                String query = "?limit=500&wait=" + WAIT_SECONDS
                        + (after == null ? "" : "&after=" + URLEncoder.encode(after, StandardCharsets.UTF_8));
                Map<?, ?> page = (Map<?, ?>) api("GET", base + "/records" + query, null, leaseId, WAIT_SECONDS + 30);
                List<?> records = (List<?>) page.get("records");
                if (!records.isEmpty()) {
                    try {
                        handle(partition, records); // first the work ...
                    } catch (RuntimeException error) {
                        System.err.println("partition " + partition + ": handle failed, the records will come again: " + error);
                        after = null;
                        Thread.sleep(1000);
                        continue;
                    }
                    Map<String, Object> commit = new LinkedHashMap<>(); // ... then the commit
                    commit.put("position", page.get("next_position"));
                    commit.put("generation", page.get("generation"));
                    api("PUT", base + "/checkpoint", commit, leaseId, 30);
                    if (max > 0 && handled.addAndGet(records.size()) >= max) stopping.set(true);
                }
                after = (String) page.get("next_position");
            } catch (ApiError error) {
                if (error.status == 409) { // leased elsewhere, our lease expired, or the stream was reset
                    leaseId = null;
                    after = null;
                    sleep(2000);
                } else if (error.status == 404 || error.status == 410 || error.status == 401) {
                    System.err.println("partition " + partition + ": " + error.getMessage());
                    stopping.set(true);
                } else {
                    System.err.println("partition " + partition + ": " + error.getMessage() + "; retrying");
                    after = null;
                    sleep(1000);
                }
            } catch (Exception error) {
                System.err.println("partition " + partition + ": " + error + "; retrying");
                after = null;
                sleep(1000);
            }
        }
        if (leaseId != null) {
            try { api("DELETE", base + "/lease", null, leaseId, 5); } catch (Exception ignored) { }
        }
    }

    static void sleep(long ms) {
        try { Thread.sleep(ms); } catch (InterruptedException ignored) { Thread.currentThread().interrupt(); }
    }

    static void consume(String streamId) throws Exception {
        Map<?, ?> stream = (Map<?, ?>) api("GET", "/v1/streams/" + URLEncoder.encode(streamId, StandardCharsets.UTF_8),
                null, null, 30);
        List<Thread> workers = new ArrayList<>();
        for (Object part : (List<?>) stream.get("partitions")) {
            int partition = ((Number) ((Map<?, ?>) part).get("partition")).intValue();
            Thread worker = new Thread(() -> consumePartition(streamId, partition), "partition-" + partition);
            workers.add(worker);
            worker.start();
        }
        Thread main = Thread.currentThread();
        Thread hook = new Thread(() -> { // Ctrl-C: finish the batches in hand, commit, then exit
            stopping.set(true);
            try { main.join(WAIT_SECONDS * 1000L + 30_000); } catch (InterruptedException ignored) { }
        });
        Runtime.getRuntime().addShutdownHook(hook);
        for (Thread worker : workers) worker.join();
        System.err.println("stopped after " + handled.get() + " record(s)");
    }

    // Standard Webhooks: webhook-signature is "v1,<base64 HMAC-SHA256(key, id + "." + timestamp + "." + body)>",
    // the key being the base64 after "whsec_" in your secret. `body` is the raw body, as received.
    static String verifyWebhook(String secret, Map<String, String> headers, byte[] body, long toleranceSeconds)
            throws Exception {
        Map<String, String> lower = new LinkedHashMap<>();
        headers.forEach((name, value) -> lower.put(name.toLowerCase(), value));
        String id = lower.get("webhook-id"), timestamp = lower.get("webhook-timestamp");
        String signatures = lower.get("webhook-signature");
        if (id == null || timestamp == null || signatures == null) return "missing webhook headers";
        if (!timestamp.matches("\\d{1,18}")
                || Math.abs(System.currentTimeMillis() / 1000 - Long.parseLong(timestamp)) > toleranceSeconds) {
            return "timestamp too old or too new";
        }
        Mac mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(Base64.getDecoder().decode(secret.replaceFirst("^whsec_", "")), "HmacSHA256"));
        mac.update((id + "." + timestamp + ".").getBytes(StandardCharsets.UTF_8));
        byte[] expected = mac.doFinal(body);
        for (String candidate : signatures.split(" ")) {
            String[] parts = candidate.split(",", 2);
            if (parts.length != 2 || !parts[0].equals("v1")) continue;
            try {
                if (MessageDigest.isEqual(expected, Base64.getDecoder().decode(parts[1]))) return null;
            } catch (IllegalArgumentException notBase64) {
                // another signature may still match
            }
        }
        return "no matching signature";
    }

    public static void main(String[] args) throws Exception {
        if (args.length >= 2 && args[0].equals("consume")) {
            for (int i = 2; i + 1 < args.length; i++) if (args[i].equals("--max")) max = Long.parseLong(args[i + 1]);
            consume(args[1]);
        } else if (args.length >= 2 && args[0].equals("verify")) {
            boolean allValid = true;
            for (int i = 1; i < args.length; i++) {
                Map<?, ?> notice = (Map<?, ?>) Json.read(Files.readString(Path.of(args[i])));
                Map<String, String> headers = new LinkedHashMap<>();
                ((Map<?, ?>) notice.get("headers")).forEach((k, v) -> headers.put((String) k, (String) v));
                String body = (String) notice.get("body");
                String problem = verifyWebhook((String) notice.get("secret"), headers,
                        body.getBytes(StandardCharsets.UTF_8), 300);
                System.out.println(problem == null ? "valid: " + ((Map<?, ?>) Json.read(body)).get("type") : "invalid: " + problem);
                allValid &= problem == null;
            }
            System.exit(allValid ? 0 : 1);
        } else {
            System.err.println("usage: java Consumer.java consume STREAM_ID [--max N] | verify NOTIFICATION.json...");
            System.exit(2);
        }
    }

    /** A small JSON reader and writer: objects become LinkedHashMap, arrays ArrayList, numbers Long or Double. */
    static final class Json {
        private final String text;
        private int at;

        private Json(String text) { this.text = text; }

        static Object read(String text) {
            Json json = new Json(text);
            Object value = json.value();
            json.blanks();
            if (json.at != text.length()) throw new IllegalArgumentException("JSON: text after the value at " + json.at);
            return value;
        }

        private void blanks() { while (at < text.length() && " \t\r\n".indexOf(text.charAt(at)) >= 0) at++; }

        private Object value() {
            blanks();
            if (at >= text.length()) throw new IllegalArgumentException("JSON: unexpected end");
            char c = text.charAt(at);
            if (c == '{') {
                Map<String, Object> map = new LinkedHashMap<>();
                at++;
                blanks();
                if (text.charAt(at) == '}') { at++; return map; }
                while (true) {
                    blanks();
                    String key = string();
                    blanks();
                    expect(':');
                    map.put(key, value());
                    blanks();
                    if (text.charAt(at) == ',') { at++; continue; }
                    expect('}');
                    return map;
                }
            }
            if (c == '[') {
                List<Object> list = new ArrayList<>();
                at++;
                blanks();
                if (text.charAt(at) == ']') { at++; return list; }
                while (true) {
                    list.add(value());
                    blanks();
                    if (text.charAt(at) == ',') { at++; continue; }
                    expect(']');
                    return list;
                }
            }
            if (c == '"') return string();
            if (text.startsWith("true", at)) { at += 4; return Boolean.TRUE; }
            if (text.startsWith("false", at)) { at += 5; return Boolean.FALSE; }
            if (text.startsWith("null", at)) { at += 4; return null; }
            int start = at;
            while (at < text.length() && "+-0123456789.eE".indexOf(text.charAt(at)) >= 0) at++;
            String number = text.substring(start, at);
            if (number.isEmpty()) throw new IllegalArgumentException("JSON: unexpected '" + c + "' at " + start);
            return number.matches("-?\\d+") ? (Object) Long.parseLong(number) : (Object) Double.parseDouble(number);
        }

        private void expect(char c) {
            if (at >= text.length() || text.charAt(at) != c) throw new IllegalArgumentException("JSON: expected '" + c + "' at " + at);
            at++;
        }

        private String string() {
            expect('"');
            StringBuilder out = new StringBuilder();
            while (true) {
                char c = text.charAt(at++);
                if (c == '"') return out.toString();
                if (c != '\\') { out.append(c); continue; }
                char e = text.charAt(at++);
                switch (e) {
                    case 'b' -> out.append('\b');
                    case 'f' -> out.append('\f');
                    case 'n' -> out.append('\n');
                    case 'r' -> out.append('\r');
                    case 't' -> out.append('\t');
                    case 'u' -> { out.append((char) Integer.parseInt(text.substring(at, at + 4), 16)); at += 4; }
                    default -> out.append(e);
                }
            }
        }

        static String write(Object value) {
            if (value == null) return "null";
            if (value instanceof String s) {
                StringBuilder out = new StringBuilder("\"");
                for (char c : s.toCharArray()) {
                    if (c == '"' || c == '\\') out.append('\\').append(c);
                    else if (c < 0x20) out.append(String.format("\\u%04x", (int) c));
                    else out.append(c);
                }
                return out.append('"').toString();
            }
            if (value instanceof Map<?, ?> map) {
                List<String> items = new ArrayList<>();
                map.forEach((k, v) -> items.add(write(String.valueOf(k)) + ":" + write(v)));
                return "{" + String.join(",", items) + "}";
            }
            if (value instanceof List<?> list) {
                List<String> items = new ArrayList<>();
                for (Object item : list) items.add(write(item));
                return "[" + String.join(",", items) + "]";
            }
            return String.valueOf(value); // numbers and booleans
        }
    }
}
