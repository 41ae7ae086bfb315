/*
 * satworks draw verifier: an independent JavaScript implementation of docs/draws.md
 * (algorithm "satworks-draw-v1"). It recomputes a draw's commitment and winners from its public
 * proof in the browser, with WebCrypto's SHA-256 and nothing from the server or a CDN.
 *
 * Numbers: ticket counts and their sums are at most 2^53 - 1, so they are exact JavaScript Numbers
 * (a Float64Array holds the Fenwick tree); the 64-bit stream words and the rejection rule use BigInt.
 *
 * Used by verify.html; also loadable in Node 20+ (module.exports) for quick checks.
 */
(function (root) {
  "use strict";

  var ALGORITHM = "satworks-draw-v1";
  var COMMITMENT_TAG = "satworks-draw-commitment";
  var SEED_TAG = "satworks-draw-seed";
  var MAX_TICKETS = Number.MAX_SAFE_INTEGER; // 2^53 - 1
  var MAX_HEIGHT = 4294967295; // 2^32 - 1
  var MAX_ID_BYTES = 1024;
  var MAX_DRAW_ID_BYTES = 256;
  var NETWORKS = ["mainnet", "testnet", "signet", "regtest"];
  var HEX32 = /^[0-9a-f]{64}$/;
  var CONTROL = /[\u0000-\u001f\u007f]/;
  var LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?:^|[^\uD800-\uDBFF])[\uDC00-\uDFFF]/;
  var TWO64 = BigInt(1) << BigInt(64);
  var encoder = new TextEncoder();

  /** The document is not a draw proof at all (wrong shape or types): nothing can be verified. */
  function ProofFormatError(message) {
    this.name = "ProofFormatError";
    this.message = message;
  }
  ProofFormatError.prototype = Object.create(Error.prototype);

  // ------------------------------------------------------------------ bytes

  async function sha256(bytes) {
    if (!root.crypto || !root.crypto.subtle) {
      throw new Error("this browser offers no WebCrypto here (the page must be served over https or from localhost)");
    }
    return new Uint8Array(await root.crypto.subtle.digest("SHA-256", bytes));
  }

  function concat(parts) {
    var size = 0;
    for (var i = 0; i < parts.length; i++) size += parts[i].length;
    var out = new Uint8Array(size);
    var at = 0;
    for (var j = 0; j < parts.length; j++) {
      out.set(parts[j], at);
      at += parts[j].length;
    }
    return out;
  }

  /** A short string: u16 big-endian byte length, then its UTF-8 bytes. */
  function textField(value) {
    var raw = encoder.encode(value);
    var out = new Uint8Array(2 + raw.length);
    out[0] = raw.length >> 8;
    out[1] = raw.length & 255;
    out.set(raw, 2);
    return out;
  }

  /** Write a safe integer (0 .. 2^53 - 1) as u64 big-endian at byte offset `at`. */
  function putU64(view, at, value) {
    view.setUint32(at, Math.floor(value / 4294967296), false);
    view.setUint32(at + 4, value % 4294967296, false);
  }

  function u64Bytes(values) {
    var out = new Uint8Array(8 * values.length);
    var view = new DataView(out.buffer);
    for (var i = 0; i < values.length; i++) putU64(view, 8 * i, values[i]);
    return out;
  }

  function toHex(bytes) {
    var s = "";
    for (var i = 0; i < bytes.length; i++) s += (bytes[i] < 16 ? "0" : "") + bytes[i].toString(16);
    return s;
  }

  function fromHex(text) {
    var out = new Uint8Array(text.length / 2);
    for (var i = 0; i < out.length; i++) out[i] = parseInt(text.substr(2 * i, 2), 16);
    return out;
  }

  /**
   * Canonical order of two well-formed strings: Unicode code point order, which is the byte order of
   * their UTF-8 encodings, and not JavaScript's `<` (UTF-16 code units put U+10000 and above, stored as
   * surrogates D800-DFFF, before E000-FFFF). Where both differing units are >= D800, surrogates are
   * moved above E000-FFFF.
   */
  function compareIds(a, b) {
    var n = Math.min(a.length, b.length);
    for (var i = 0; i < n; i++) {
      var x = a.charCodeAt(i);
      var y = b.charCodeAt(i);
      if (x !== y) {
        if (x >= 0xd800 && y >= 0xd800) {
          x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
          y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
        }
        return x - y;
      }
    }
    return a.length - b.length;
  }

  // ------------------------------------------------------------------ reading the document

  function isObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  function onlyKeys(value, where, required, optional) {
    if (!isObject(value)) throw new ProofFormatError(where + ": must be an object");
    var allowed = required.concat(optional || []);
    Object.keys(value).forEach(function (key) {
      if (allowed.indexOf(key) < 0) throw new ProofFormatError(where + ": unexpected field " + JSON.stringify(key));
    });
    required.forEach(function (key) {
      if (!(key in value)) throw new ProofFormatError(where + ": missing field " + JSON.stringify(key));
    });
  }

  function count(value, where, min, max) {
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min || value > max) {
      throw new ProofFormatError(where + ": must be an integer from " + min + " to " + max);
    }
    return value;
  }

  function text(value, where) {
    if (typeof value !== "string") throw new ProofFormatError(where + ": must be a string");
    // JSON.parse accepts "\ud800"; it is not Unicode text (and not a proof, as for the Python verifier).
    if (LONE_SURROGATE.test(value)) throw new ProofFormatError(where + ": invalid Unicode (a lone surrogate)");
    return value;
  }

  function hex32(value, where) {
    if (typeof value !== "string" || !HEX32.test(value)) {
      throw new ProofFormatError(where + ": must be 64 lowercase hex digits");
    }
    return value;
  }

  /** The shape checks of the proof document; throws ProofFormatError. */
  function readProof(doc) {
    onlyKeys(doc, "document", ["draw_id", "k", "beacon", "commitment", "entries", "winners"], ["algorithm"]);
    var algorithm = "algorithm" in doc ? doc.algorithm : ALGORITHM;
    if (algorithm !== ALGORITHM) {
      throw new ProofFormatError("algorithm: " + JSON.stringify(algorithm) + " is not supported (only " + ALGORITHM + ")");
    }
    var beacon = doc.beacon;
    onlyKeys(beacon, "beacon", ["network", "height", "block_hash"], ["type"]);
    if ("type" in beacon && beacon.type !== "bitcoin_block") {
      throw new ProofFormatError("beacon.type: must be \"bitcoin_block\"");
    }
    if (NETWORKS.indexOf(beacon.network) < 0) throw new ProofFormatError("beacon.network: must be one of " + NETWORKS.join(", "));
    if (!Array.isArray(doc.entries) || doc.entries.length === 0) {
      throw new ProofFormatError("entries: must be a non-empty list");
    }
    if (!Array.isArray(doc.winners)) throw new ProofFormatError("winners: must be a list");
    var ids = new Array(doc.entries.length);
    var tickets = new Array(doc.entries.length);
    for (var i = 0; i < doc.entries.length; i++) {
      var entry = doc.entries[i];
      onlyKeys(entry, "entries." + i, ["id", "tickets"]);
      ids[i] = text(entry.id, "entries." + i + ".id");
      tickets[i] = count(entry.tickets, "entries." + i + ".tickets", 1, MAX_TICKETS);
    }
    var winners = doc.winners.map(function (winner, rank) {
      onlyKeys(winner, "winners." + rank, ["id", "ticket"]);
      return { id: text(winner.id, "winners." + rank + ".id"), ticket: count(winner.ticket, "winners." + rank + ".ticket", 1, MAX_TICKETS) };
    });
    return {
      algorithm: ALGORITHM,
      drawId: text(doc.draw_id, "draw_id"),
      k: count(doc.k, "k", 1, MAX_TICKETS),
      beacon: {
        type: "bitcoin_block",
        network: beacon.network,
        height: count(beacon.height, "beacon.height", 0, MAX_HEIGHT),
        blockHash: hex32(beacon.block_hash, "beacon.block_hash"),
      },
      commitment: hex32(doc.commitment, "commitment"),
      ids: ids,
      tickets: tickets,
      winners: winners,
    };
  }

  /** The rules of docs/draws.md "Inputs" an id or draw id must keep; returns the problem or null. */
  function textProblem(value, maxBytes) {
    if (value.length === 0) return "must not be empty";
    if (CONTROL.test(value) || LONE_SURROGATE.test(value)) {
      return "must not contain control characters or invalid Unicode (lone surrogates)";
    }
    // A UTF-16 code unit is at most 3 UTF-8 bytes, so only long strings need encoding to be measured.
    if (value.length * 3 > maxBytes && encoder.encode(value).length > maxBytes) {
      return "must be at most " + maxBytes + " bytes in UTF-8";
    }
    return null;
  }

  /** The first id breaking the rules, as "entries.i.id: problem", or null; one pass over all ids when all are fine. */
  function idsProblem(ids) {
    var longest = 0;
    for (var i = 0; i < ids.length; i++) longest = Math.max(longest, ids[i].length);
    var joined = ids.join("");
    var clean = longest * 3 <= MAX_ID_BYTES && !CONTROL.test(joined) && !LONE_SURROGATE.test(ids.join("\u0000"));
    if (clean && ids.every(function (id) { return id.length > 0; })) return null;
    for (var j = 0; j < ids.length; j++) {
      var problem = textProblem(ids[j], MAX_ID_BYTES);
      if (problem) return "entries." + j + ".id: " + problem;
    }
    return null;
  }

  // ------------------------------------------------------------------ the algorithm

  function commitmentPreimage(proof, total) {
    var header = new Uint8Array(32);
    var view = new DataView(header.buffer);
    putU64(view, 0, proof.beacon.height);
    putU64(view, 8, proof.k);
    putU64(view, 16, proof.ids.length);
    putU64(view, 24, total);
    return concat([
      textField(COMMITMENT_TAG),
      textField(proof.algorithm),
      textField(proof.drawId),
      textField(proof.beacon.type),
      textField(proof.beacon.network),
      header,
      encoder.encode(proof.ids.join("\u0000") + "\u0000"), // each id's UTF-8 bytes, then 00 (ids hold no U+0000)
      u64Bytes(proof.tickets),
    ]);
  }

  async function drawSeed(blockHash, commitment, drawId) {
    return sha256(
      concat([textField(SEED_TAG), textField(ALGORITHM), fromHex(blockHash), fromHex(commitment), textField(drawId)]),
    );
  }

  /** u64 words of SHA-256(seed || u64be(i)), i = 0, 1, ...; `below` is the rejection rule. */
  function Stream(seed) {
    this.seed = seed;
    this.block = 0;
    this.words = [];
  }
  Stream.prototype.word = async function () {
    if (this.words.length === 0) {
      var digest = await sha256(concat([this.seed, u64Bytes([this.block])]));
      this.block += 1;
      var view = new DataView(digest.buffer);
      for (var i = 0; i < 4; i++) this.words.push(view.getBigUint64(8 * i, false));
    }
    return this.words.shift();
  };
  Stream.prototype.below = async function (bound) {
    var big = BigInt(bound);
    var limit = TWO64 - (TWO64 % big);
    var rejected = 0;
    for (;;) {
      var x = await this.word();
      if (x < limit) return { r: Number(x % big), rejected: rejected };
      rejected += 1;
    }
  };

  /** Winners in draw order: [{id, ticket}], plus the rounds ({remaining, r, rejected}) for test vectors. */
  async function selectWinners(ids, tickets, k, seed) {
    var n = ids.length;
    var first = new Float64Array(n + 1);
    var tree = new Float64Array(n + 1);
    for (var i = 1; i <= n; i++) {
      first[i] = first[i - 1] + tickets[i - 1];
      tree[i] += tickets[i - 1];
      var parent = i + (i & -i);
      if (parent <= n) tree[parent] += tree[i];
    }
    var top = 1;
    while (top * 2 <= n) top *= 2;
    var remaining = first[n];
    var stream = new Stream(seed);
    var winners = [];
    var rounds = [];
    for (var round = 0; round < k; round++) {
      var drawn = await stream.below(remaining);
      rounds.push({ remaining: remaining, r: drawn.r, rejected: drawn.rejected });
      var pos = 0;
      var rest = drawn.r;
      for (var step = top; step > 0; step >>= 1) {
        var next = pos + step;
        if (next <= n && tree[next] <= rest) {
          pos = next;
          rest -= tree[next];
        }
      }
      winners.push({ id: ids[pos], ticket: first[pos] + rest + 1 });
      var held = tickets[pos];
      remaining -= held;
      for (var j = pos + 1; j <= n; j += j & -j) tree[j] -= held;
    }
    return { winners: winners, rounds: rounds };
  }

  function mismatch(reason, extra) {
    return Object.assign({ ok: false, status: "mismatch", reason: reason }, extra || {});
  }

  /**
   * Verify a parsed proof document. Returns {ok, status: "match" | "mismatch", reason, commitment,
   * seed, winners, rounds, totalTickets}; throws ProofFormatError when it is not a draw proof.
   */
  async function verifyProof(doc) {
    var proof = readProof(doc);
    var problem = textProblem(proof.drawId, MAX_DRAW_ID_BYTES);
    if (problem) return mismatch("invalid proof: draw_id: " + problem);
    var n = proof.ids.length;
    problem = idsProblem(proof.ids);
    if (problem) return mismatch("invalid proof: " + problem);
    var total = 0;
    for (var i = 0; i < n; i++) total += proof.tickets[i];
    if (total > MAX_TICKETS) {
      return mismatch("invalid proof: entries: more than " + MAX_TICKETS + " tickets in total");
    }
    for (var j = 1; j < n; j++) {
      var order = compareIds(proof.ids[j - 1], proof.ids[j]);
      if (order === 0) return mismatch("invalid proof: entries." + j + ".id: duplicate id " + JSON.stringify(proof.ids[j]));
      if (order > 0) {
        return mismatch("invalid proof: entries are not in canonical order (ascending id code points)");
      }
    }
    if (proof.k > n) return mismatch("invalid proof: k: " + proof.k + " winners but only " + n + " distinct entries");
    var commitment = toHex(await sha256(commitmentPreimage(proof, total)));
    if (commitment !== proof.commitment) {
      return mismatch(
        "commitment mismatch: the draw id, beacon, k and entries give " + commitment + ", the proof says " + proof.commitment,
        { commitment: commitment, totalTickets: total },
      );
    }
    var seed = await drawSeed(proof.beacon.blockHash, commitment, proof.drawId);
    var drawn = await selectWinners(proof.ids, proof.tickets, proof.k, seed);
    var result = { commitment: commitment, seed: toHex(seed), winners: drawn.winners, rounds: drawn.rounds, totalTickets: total };
    if (proof.winners.length !== proof.k) {
      return mismatch("winners mismatch: the proof lists " + proof.winners.length + " winners, k is " + proof.k, result);
    }
    for (var rank = 0; rank < proof.k; rank++) {
      var mine = drawn.winners[rank];
      var theirs = proof.winners[rank];
      if (mine.id !== theirs.id || mine.ticket !== theirs.ticket) {
        return mismatch(
          "winner " + (rank + 1) + " mismatch: recomputed " + JSON.stringify(mine.id) + " with ticket " + mine.ticket +
            ", the proof says " + JSON.stringify(theirs.id) + " with ticket " + theirs.ticket,
          result,
        );
      }
    }
    return Object.assign(
      {
        ok: true,
        status: "match",
        reason:
          "commitment " + commitment + " and all " + proof.k + " winners match (block " + proof.beacon.blockHash +
          " at height " + proof.beacon.height + " on " + proof.beacon.network + ")",
      },
      result,
    );
  }

  // ------------------------------------------------------------------ the page

  function el(tag, textContent, className) {
    var node = document.createElement(tag);
    if (textContent !== undefined) node.textContent = textContent;
    if (className) node.className = className;
    return node;
  }

  function show(result, doc) {
    var box = document.getElementById("result");
    box.dataset.status = result.status;
    box.replaceChildren();
    var headline = { match: "MATCH", mismatch: "MISMATCH", error: "ERROR" }[result.status];
    box.appendChild(el("p", headline + ": " + result.reason, "headline"));
    var details = document.getElementById("details");
    details.replaceChildren();
    if (result.status === "error") return;
    var facts = el("dl");
    [
      ["Draw", doc.draw_id],
      ["Entries", doc.entries.length + " entries holding " + result.totalTickets + " tickets; " + doc.k + " winners"],
      ["Commitment (recomputed)", result.commitment],
      ["Beacon", "Bitcoin " + doc.beacon.network + " block at height " + doc.beacon.height],
      ["Block hash", doc.beacon.block_hash],
    ].forEach(function (row) {
      facts.appendChild(el("dt", row[0]));
      facts.appendChild(el("dd", String(row[1])));
    });
    details.appendChild(facts);
    details.appendChild(
      el(
        "p",
        "This page cannot ask the Bitcoin network itself: check on any block explorer or your own node that the " +
          doc.beacon.network + " block at height " + doc.beacon.height + " has the hash above.",
        "note",
      ),
    );
    if (result.winners && result.winners.length) {
      var table = el("table");
      var head = el("tr");
      ["Rank", "Winner (recomputed)", "Winning ticket"].forEach(function (h) { head.appendChild(el("th", h)); });
      table.appendChild(head);
      result.winners.forEach(function (winner, rank) {
        var row = el("tr");
        row.appendChild(el("td", String(rank + 1)));
        row.appendChild(el("td", winner.id));
        row.appendChild(el("td", String(winner.ticket)));
        table.appendChild(row);
      });
      details.appendChild(table);
    }
  }

  async function verifyText(raw) {
    var box = document.getElementById("result");
    box.dataset.status = "working";
    box.textContent = "Verifying…";
    var doc;
    try {
      doc = JSON.parse(raw);
    } catch (exc) {
      show({ status: "error", reason: "the proof is not valid JSON (" + exc.message + ")" });
      return;
    }
    try {
      show(await verifyProof(doc), doc);
    } catch (exc) {
      var reason = exc instanceof ProofFormatError ? "this is not a draw proof: " + exc.message : String(exc.message || exc);
      show({ status: "error", reason: reason });
    }
  }

  async function start() {
    var embedded = document.getElementById("satworks-proof");
    var input = document.getElementById("proof-input");
    document.getElementById("verify-button").addEventListener("click", function () { verifyText(input.value); });
    document.getElementById("proof-file").addEventListener("change", function (event) {
      var file = event.target.files[0];
      if (file) file.text().then(function (raw) { input.value = raw; return verifyText(raw); });
    });
    if (embedded && embedded.textContent.trim()) {
      input.value = embedded.textContent.trim();
      return verifyText(input.value);
    }
    // ?proof=URL, or the server's <link rel="satworks-proof" href="..."> (the public page of a draw).
    var linked = document.querySelector('link[rel="satworks-proof"]');
    var url = new URLSearchParams(root.location.search).get("proof") || (linked && linked.getAttribute("href"));
    if (url) {
      try {
        var response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (!response.ok) throw new Error("HTTP " + response.status);
        input.value = await response.text();
      } catch (exc) {
        show({ status: "error", reason: "could not load the proof from " + url + " (" + exc.message + ")" });
        return;
      }
      return verifyText(input.value);
    }
  }

  var api = {
    ALGORITHM: ALGORITHM,
    ProofFormatError: ProofFormatError,
    verifyProof: verifyProof,
    selectWinners: selectWinners,
    drawSeed: drawSeed,
    compareIds: compareIds,
  };
  root.SatworksDraws = api;
  if (typeof module === "object" && module.exports) module.exports = api;
  if (typeof document !== "undefined") {
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
    else start();
  }
})(typeof globalThis !== "undefined" ? globalThis : this);
