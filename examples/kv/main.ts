/**
 * Runs one member of the replicated key-value example. The same as `orrery node`:
 *
 *     node --import tsx examples/kv/main.ts --id n1 --members n1=127.0.0.1:7001,... --data ./data/n1
 *
 * See README.md beside this file for a three-member cluster on loopback.
 */
import { runMember } from "./member.ts";

process.exitCode = await runMember(process.argv.slice(2), (text) => process.stderr.write(text));
