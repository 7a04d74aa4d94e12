import { concatFrames, encodeFrame } from "../frame.ts";
import { describeTransportConformance } from "../conformance.ts";
import { MemoryNetwork } from "./memory.ts";

for (const encode of [true, false]) {
describeTransportConformance(encode ? "memory" : "memory (by reference)", () => {
  const network = new MemoryNetwork();
  return {
    tls: false,
    exactSizes: encode,
    create: (options) =>
      network.transport({
        id: options.id,
        encode,
        clusterId: options.clusterId,
        ...(options.secret === undefined ? {} : { secret: options.secret }),
        ...(options.admit === undefined ? {} : { admit: options.admit }),
        ...(options.frameBytesMax === undefined ? {} : { frameBytesMax: options.frameBytesMax }),
        ...(options.sendBufferBytesMax === undefined ? {} : { sendBufferBytesMax: options.sendBufferBytesMax }),
        ...(options.logger === undefined ? {} : { logger: options.logger }),
      }),
    async sendRaw(target, input) {
      const opening = input.hello === null ? [] : [encodeFrame({ kind: "hello", hello: input.hello })];
      network.inject(input.hello?.from ?? "intruder", target.id, concatFrames([...opening, input.bytes]));
      // The network delivers on a later turn of the event loop.
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
    },
  };
});
}
