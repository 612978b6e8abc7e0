// DNS guard for Node programs run by the tests and the bench (the real `openclaw` CLI and
// gateway). Loaded with NODE_OPTIONS=--require <this file>. Every host-name lookup other than
// localhost names and loopback literals fails at once with ENOTFOUND, so a program under test
// can only reach 127.0.0.1. Each refused lookup is appended as one JSON line to
// $DNS_GUARD_LOG (host name and a short stack), so a stray outbound attempt is visible.
"use strict";
const dns = require("node:dns");
const fs = require("node:fs");

const LOG = process.env.DNS_GUARD_LOG || "";

function allowed(host) {
  if (typeof host !== "string") return false;
  const h = host.toLowerCase().replace(/^\[|\]$/g, "");
  return h === "localhost" || h.endsWith(".localhost") || /^127\.\d+\.\d+\.\d+$/.test(h) || h === "::1";
}

function record(host) {
  if (!LOG) return;
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 30;
  const stack = (new Error().stack || "").split("\n").slice(3).map((l) => l.trim());
  Error.stackTraceLimit = limit;
  try {
    fs.appendFileSync(LOG, JSON.stringify({ time: new Date().toISOString(), pid: process.pid, host, stack }) + "\n");
  } catch {
    // The log is a diagnostic; a failure to write it must not change the program's behaviour.
  }
}

function refused(host) {
  const err = new Error(`getaddrinfo ENOTFOUND ${host} (refused by the test DNS guard)`);
  Object.assign(err, { code: "ENOTFOUND", errno: -3008, syscall: "getaddrinfo", hostname: host });
  return err;
}

const lookup = dns.lookup;
dns.lookup = function guardedLookup(host, options, callback) {
  if (typeof options === "function") [callback, options] = [options, {}];
  if (!allowed(host)) {
    record(host);
    process.nextTick(callback, refused(host));
    return {};
  }
  return lookup.call(dns, host, options, callback);
};

const lookupPromise = dns.promises.lookup;
dns.promises.lookup = async function guardedLookupPromise(host, options) {
  if (!allowed(host)) {
    record(host);
    throw refused(host);
  }
  return lookupPromise.call(dns.promises, host, options);
};
