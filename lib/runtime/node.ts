/**
 * The Node runtime's `createNode` and `createPlacementMember`: the host's, on the Node clock and
 * `Math.random` unless told otherwise, and for a placement member the HTTP gateway when asked for.
 */
import { createNode as createHostNode, type OrreryNode } from "../host/node.ts";
import type { NodeOptions } from "../host/options.ts";
import {
  createPlacementMember as createHostPlacementMember,
  type PlacementMember as HostPlacementMember,
  type PlacementMemberOptions as HostPlacementMemberOptions,
} from "../host/placement-member.ts";
import { nodeClock } from "./clock.ts";
import { createGateway, type Gateway, type GatewayOptions } from "./gateway.ts";

/**
 * Starts a member (see the host's `createNode`): loads `storage`, restores the state machine from
 * the latest snapshot, starts the transport and the tick timer, on the Node clock unless `clock`
 * is given.
 * @throws ConfigError for bad options; StorageError when the storage cannot be loaded.
 */
export function createNode<Result = unknown>(options: NodeOptions<Result>): Promise<OrreryNode<Result>> {
  return createHostNode({ ...options, clock: options.clock ?? nodeClock(), random: options.random ?? Math.random });
}

/** Options of {@link createPlacementMember}: the host's, and the gateway's. */
export interface PlacementMemberOptions extends HostPlacementMemberOptions {
  /**
   * The gateway's options (`listen` at least), or `null` for a member without one.
   * @defaultValue null
   */
  readonly gateway?: Omit<GatewayOptions, "routes" | "ready" | "metrics" | "status" | "logger"> | null;
}

/** A running placement member, with its HTTP gateway when one was asked for. */
export interface PlacementMember extends HostPlacementMember {
  /** The gateway, when one was asked for. */
  readonly gateway: Gateway | null;
  /** Stops the gateway (letting requests in progress finish), the placement timers and the node. */
  close(): Promise<void>;
}

/**
 * Starts a placement member: the node, the placement leader logic, the worker desk and (when
 * `gateway` is given) the HTTP gateway.
 * @throws ConfigError for bad options; whatever `createNode` throws; the listen error of the gateway.
 */
export async function createPlacementMember(options: PlacementMemberOptions): Promise<PlacementMember> {
  const { gateway: gatewayOptions, ...hostOptions } = options;
  const member = await createHostPlacementMember({
    ...hostOptions,
    clock: options.clock ?? nodeClock(),
    random: options.random ?? Math.random,
  });
  let gateway: Gateway | null = null;
  if (gatewayOptions !== undefined && gatewayOptions !== null) {
    try {
      gateway = await createGateway({
        ...gatewayOptions,
        routes: member.routes,
        ready: () => member.ready(),
        metrics: () => member.metrics(),
        status: () => member.statusJson(),
        ...(options.logger === undefined ? {} : { logger: options.logger }),
      });
    } catch (error) {
      await member.close();
      throw error;
    }
  }
  let closing: Promise<void> | null = null;
  return {
    node: member.node,
    routes: member.routes,
    gateway,
    table: () => member.table(),
    route: (key, fresh) => member.route(key, fresh),
    ready: () => member.ready(),
    metrics: () => member.metrics(),
    statusJson: () => member.statusJson(),
    close(): Promise<void> {
      closing ??= (async () => {
        await gateway?.close();
        await member.close();
      })();
      return closing;
    },
  };
}
