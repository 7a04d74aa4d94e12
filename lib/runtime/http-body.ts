/**
 * Reading an HTTP request's body under a limit, for the worker's server and the examples' services
 * (the gateway reads its own, event by event, to answer and drop large bodies without a stream).
 */
import type { IncomingMessage } from "node:http";

/**
 * Reads `req`'s whole body if it is at most `bytesMax` bytes. A body over the limit — declared so in
 * `content-length`, or found so while reading — makes it call `tooLarge` (to answer 413) and
 * return `null`: a declared one is drained unread, one found while reading ends the connection, so
 * that a client cannot make the server buffer more than `bytesMax`.
 */
export async function readBodyWithin(req: IncomingMessage, bytesMax: number, tooLarge: () => void): Promise<Buffer | null> {
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > bytesMax) {
    tooLarge();
    req.resume();
    return null;
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > bytesMax) {
      tooLarge();
      req.destroy();
      return null;
    }
    chunks.push(chunk);
  }
  return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, total);
}
