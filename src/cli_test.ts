import assert from "node:assert/strict";
import { parseDuration, parseHostPort } from "./cli.ts";

Deno.test("parseDuration() reads seconds, units and sums, and refuses the rest", () => {
  assert.equal(parseDuration("90", "--t"), 90_000);
  assert.equal(parseDuration("90s", "--t"), 90_000);
  assert.equal(parseDuration("1h30m", "--t"), 5_400_000);
  assert.equal(parseDuration("250ms", "--t"), 250);
  for (const bad of ["", "0", "5 minutes", "-1s", "1d"]) assert.throws(() => parseDuration(bad, "--t"), /--t must/);
});

Deno.test("parseHostPort() takes names, IPv4 and [IPv6] with a port", () => {
  for (const ok of ["host0.example.com:22625", "10.0.0.1:5000", "[fd00::1]:443"]) assert.equal(parseHostPort(ok, "--m"), ok);
  for (const bad of ["host0", "10.0.0.1:0", "10.0.0.1:70000", "http://h:1"]) assert.throws(() => parseHostPort(bad, "--m"));
});
