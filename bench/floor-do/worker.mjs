// The floor of the handled path: what one Durable Object hop costs under the same workerd.
// The worker forwards each POST (its body included) to a Durable Object of a new name
// (`idFromName`, a fresh one per request, as every handled event of a new user reaches a new
// queue), which reads the body and answers 200 "ok"; anything else is answered 200 "ok" at
// once, like bench/floor. No signature check, no storage, no log line.
import { DurableObject } from 'cloudflare:workers';

export class FloorObject extends DurableObject {
  async fetch(request) {
    await request.text();
    return new Response('ok');
  }
}

export default {
  fetch(request, env) {
    if (request.method !== 'POST') return new Response('ok');
    const stub = env.FLOOR.get(env.FLOOR.idFromName(crypto.randomUUID()));
    return stub.fetch(request);
  },
};
