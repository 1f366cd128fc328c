import assert from "node:assert/strict";
import { GetError, GetPool } from "./http_get.ts";

/** A raw HTTP/1.1 server on 127.0.0.1 answering each request with `answer(path)`'s bytes; counts connections. */
function rawServer(answer: (path: string, conn: Deno.Conn) => Promise<boolean | void>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const state = { connections: 0, conns: [] as Deno.Conn[] };
  const done = (async () => {
    for await (const conn of listener) {
      state.connections++;
      state.conns.push(conn);
      (async () => {
        const buf = new Uint8Array(4096);
        let text = "";
        try {
          for (;;) {
            const n = await conn.read(buf);
            if (n === null) break;
            text += new TextDecoder().decode(buf.subarray(0, n));
            let end;
            while ((end = text.indexOf("\r\n\r\n")) >= 0) {
              const path = text.slice(4, text.indexOf(" ", 4));
              text = text.slice(end + 4);
              if (await answer(path, conn)) {
                conn.close();
                return;
              }
            }
          }
        } catch { /* closed */ }
        try {
          conn.close();
        } catch { /* closed */ }
      })();
    }
  })().catch(() => {});
  const port = (listener.addr as Deno.NetAddr).port;
  return {
    url: new URL(`http://127.0.0.1:${port}`),
    state,
    async close() {
      listener.close();
      for (const c of state.conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await done;
    },
  };
}

const enc = (s: string) => new TextEncoder().encode(s);
async function writeAll(conn: Deno.Conn, b: Uint8Array) {
  for (let w = 0; w < b.length;) w += await conn.write(b.subarray(w));
}

async function readBody(res: { read(dst: Uint8Array): Promise<number> }, chunk = 7): Promise<string> {
  const out: number[] = [];
  const buf = new Uint8Array(chunk);
  for (let n; (n = await res.read(buf)) > 0;) out.push(...buf.subarray(0, n));
  return new TextDecoder().decode(new Uint8Array(out));
}

Deno.test("GetPool: bodies read whole in small reads, the connection kept alive for the next GET", async () => {
  const srv = rawServer(async (path, conn) => {
    const body = `body of ${path} `.repeat(50);
    // Headers and the first body bytes in one write, the rest after: both reach the caller.
    await writeAll(conn, enc(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body.slice(0, 10)}`));
    await writeAll(conn, enc(body.slice(10)));
  });
  const pool = new GetPool(srv.url, undefined, 5000);
  try {
    for (const p of ["/a", "/b", "/c"]) {
      const res = await pool.get(p);
      assert.equal(res.status, 200);
      assert.equal(await readBody(res), `body of ${p} `.repeat(50));
    }
    assert.equal(srv.state.connections, 1);
  } finally {
    pool.close();
    await srv.close();
  }
});

Deno.test("GetPool: a kept-alive connection the peer closed is replaced; a status other than 200 is given with its headers", async () => {
  let n = 0;
  const srv = rawServer(async (_path, conn) => {
    n++;
    await writeAll(
      conn,
      enc(n === 2 ? "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n" : "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"),
    );
    return true; // closes after each answer, without saying so
  });
  const pool = new GetPool(srv.url, undefined, 5000);
  try {
    assert.equal(await readBody(await pool.get("/x")), "ok");
    const res = await pool.get("/y");
    assert.equal(res.status, 404);
    assert.equal(res.length, 0);
    assert.ok(srv.state.connections >= 2);
  } finally {
    pool.close();
    await srv.close();
  }
});

Deno.test("GetPool: a body cut short and a peer gone silent are GetErrors", async () => {
  const srv = rawServer(async (path, conn) => {
    await writeAll(conn, enc("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this"));
    if (path === "/cut") return true;
    await new Promise((r) => setTimeout(r, 2000));
  });
  const pool = new GetPool(srv.url, undefined, 300);
  try {
    const cut = await pool.get("/cut");
    await assert.rejects(() => readBody(cut, 100), (e) => e instanceof GetError && /the connection closed/.test(e.message));
    const silent = await pool.get("/silent");
    await assert.rejects(() => readBody(silent, 100), (e) => e instanceof GetError && /it stopped sending/.test(e.message));
  } finally {
    pool.close();
    await srv.close();
  }
});

Deno.test("GetPool: a body that keeps coming, slower than the idle time in all, is read whole", async () => {
  // Ten pieces 100 ms apart: a second in all against a 300 ms idle time, but no read waits that long.
  const srv = rawServer(async (_path, conn) => {
    await writeAll(conn, enc("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n"));
    for (let i = 0; i < 10; i++) {
      await new Promise((r) => setTimeout(r, 100));
      await writeAll(conn, enc(String(i)));
    }
  });
  const pool = new GetPool(srv.url, undefined, 300);
  try {
    assert.equal(await readBody(await pool.get("/slow"), 100), "0123456789");
  } finally {
    pool.close();
    await srv.close();
  }
});

Deno.test("GetPool: a peer that accepts but never finishes the TLS handshake is a GetError within the idle time", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of listener) held.push(c);
  })().catch(() => {});
  const pool = new GetPool(new URL(`https://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`), undefined, 300);
  try {
    // The message says the idle timer cut it: before, this waited for the peer for good.
    await assert.rejects(pool.get("/v2/"), (e: unknown) => e instanceof GetError && /TLS handshake did not finish in/.test(e.message));
  } finally {
    pool.close();
    listener.close();
    for (const c of held) c.close();
    await accepting;
  }
});
