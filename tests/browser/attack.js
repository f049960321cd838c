// Web pages attacking a running `kms-eth serve`, in a real headless Chromium driven by
// playwright-core (run by the end-to-end test serve::browser through the harness's
// `browser::run_script`). Two pages, each trying to make the service send 1 ether:
//
// - a page of another site (http://evil.example:PORT/, served here, the name resolved to
//   127.0.0.1 by Chromium's host resolver rules): fetch() of a text/plain POST (a simple
//   request, no preflight), the same in no-cors mode, a JSON POST (preflighted), a GET of
//   /readyz, and a <form enctype="text/plain"> whose field carries the JSON-RPC call;
// - a page reached through DNS rebinding: its document is answered for
//   http://rebind.evil.example:SERVICE_PORT/page as the attacker's server answered it
//   before the name was pointed at 127.0.0.1; its same-origin fetch() calls then reach
//   the service with its own name in Host and Origin, without a preflight, and could read
//   the answers.
//
// Argument: JSON {"service_port", "from", "to"}. Prints JSON {"cross_site": {...},
// "rebound": {...}}: what each page's requests gave (status and body where the page may
// read them, the error where the browser would not let it).

"use strict";

const http = require("http");
const { chromium } = require("playwright-core");

const config = JSON.parse(process.argv[2]);
const service = `http://127.0.0.1:${config.service_port}`;
const send = JSON.stringify({
  jsonrpc: "2.0",
  id: 1,
  method: "eth_sendTransaction",
  params: [{ from: config.from, to: config.to, value: "0xde0b6b3a7640000" }],
});

// Shared by both pages: runs each attempt, records what the page could see of it.
const attempts = `
  window.results = {};
  async function attempt(name, request) {
    try {
      const response = await request();
      let body = null;
      try { body = await response.text(); } catch (e) { body = String(e); }
      window.results[name] = { status: response.status, type: response.type, body };
    } catch (e) {
      window.results[name] = { error: String(e) };
    }
  }
`;

// The form's one field: its name is the call without its closing brace plus a dummy
// member, its value closes it, so the text/plain body is `name=value`, valid JSON.
const fieldName = `${send.slice(0, -1)},"pad":"`;
const crossSitePage = `<!doctype html><html><body>
<iframe name="sink" id="sink"></iframe>
<form id="form" method="POST" action="${service}/" enctype="text/plain" target="sink">
<input type="hidden" name='${fieldName}' value='"}'>
</form>
<script>
${attempts}
(async () => {
  const body = ${JSON.stringify(send)};
  await attempt("text_plain_post", () => fetch("${service}/", { method: "POST", body }));
  await attempt("no_cors_post", () => fetch("${service}/", { method: "POST", mode: "no-cors", body }));
  await attempt("json_post", () => fetch("${service}/", {
    method: "POST", headers: { "Content-Type": "application/json" }, body }));
  await attempt("readyz", () => fetch("${service}/readyz"));
  const sink = document.getElementById("sink");
  sink.addEventListener("load", () => { window.results.form_post = { submitted: true }; window.done = true; });
  document.getElementById("form").submit();
})();
</script></body></html>`;

const reboundPage = `<!doctype html><html><body><script>
${attempts}
(async () => {
  const body = ${JSON.stringify(send)};
  await attempt("json_post", () => fetch("/", {
    method: "POST", headers: { "Content-Type": "application/json" }, body }));
  await attempt("text_plain_post", () => fetch("/", { method: "POST", body }));
  await attempt("readyz", () => fetch("/readyz"));
  window.done = true;
})();
</script></body></html>`;

async function main() {
  const pages = http.createServer((request, response) => {
    response.writeHead(200, { "Content-Type": "text/html" });
    response.end(crossSitePage);
  });
  await new Promise((resolve) => pages.listen(0, "127.0.0.1", resolve));
  const pagesPort = pages.address().port;
  const browser = await chromium.launch({
    executablePath: process.env.KMS_ETH_CHROMIUM,
    headless: true,
    args: [
      ...process.env.KMS_ETH_CHROMIUM_FLAGS.split(" "),
      "--host-resolver-rules=MAP evil.example 127.0.0.1, MAP rebind.evil.example 127.0.0.1",
      // Chromium's Local Network Access checks hold back a page whose document did not
      // come from a local address (here: answered by Playwright) from calling 127.0.0.1,
      // asking the user first. Users say yes, other browsers have no such check, and the
      // service must refuse by itself: the test turns the browser's check off, so that what
      // stops the rebound page is the service's refusal (which the page then reads).
      "--disable-features=LocalNetworkAccessChecks",
    ],
  });
  try {
    const context = await browser.newContext();
    const results = {};

    const crossSite = await context.newPage();
    await crossSite.goto(`http://evil.example:${pagesPort}/`);
    await crossSite.waitForFunction(() => window.done === true, null, { timeout: 30000 });
    results.cross_site = await crossSite.evaluate(() => window.results);

    // Only the document is the attacker's; every other request goes to the network,
    // where the name now leads to the service.
    const reboundUrl = `http://rebind.evil.example:${config.service_port}/page`;
    const rebound = await context.newPage();
    await rebound.route(reboundUrl, (route) =>
      route.fulfill({ status: 200, contentType: "text/html", body: reboundPage }),
    );
    await rebound.goto(reboundUrl);
    await rebound.waitForFunction(() => window.done === true, null, { timeout: 30000 });
    results.rebound = await rebound.evaluate(() => window.results);

    process.stdout.write(JSON.stringify(results));
  } finally {
    await browser.close();
    pages.close();
  }
}

main().catch((error) => {
  process.stderr.write(`attack.js: ${error.stack || error}\n`);
  process.exit(1);
});
