// The floor plus what every request of this service also pays: one JSON log line. Answers
// 200 "ok" to everything, like bench/floor, after a console.log of the same shape as the Rust
// worker's and the reference's. The difference to bench/floor is the cost of that line.
export default {
  fetch(request) {
    const started = Date.now();
    const { pathname } = new URL(request.url);
    const log = { method: request.method, path: pathname, status: 200, duration_ms: Date.now() - started };
    console.log(JSON.stringify(log));
    return new Response('ok');
  },
};
