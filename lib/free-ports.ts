/**
 * Test support: free loopback ports for integration tests and benchmarks. A port could be taken by another
 * process between this call and its use; callers that care retry on EADDRINUSE.
 */
import { createServer } from "node:net";

/** `count` distinct free TCP ports on 127.0.0.1: all are held open together, then released. */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.once("error", reject);
          server.listen(0, "127.0.0.1", () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((server) => {
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("no port from listen(0)");
    return address.port;
  });
  await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  return ports;
}
