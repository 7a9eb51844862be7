// The floor of the benchmark: a worker that does nothing but answer 200 "ok".
export default {
  fetch() {
    return new Response('ok');
  },
};
