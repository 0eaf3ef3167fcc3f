// ingest-mqtt: device telemetry over MQTT (ARCHITECTURE §9) → `crm.device.telemetry` → customers.handle. A reading
// is acknowledged (QoS 1 PUBACK) only once its actor persisted it, or once it is dead-lettered with the reason.
import { createHash } from "node:crypto";
import { createServer, type Server } from "node:net";
import { hostname } from "node:os";
import mqtt from "mqtt";
import type { IClientOptions, IPublishPacket, MqttClient } from "mqtt";
import { Aedes } from "aedes";
import type { Client as AedesClient, PublishPacket } from "aedes";
import type { Context, Logger, Service, ServiceBroker, ServiceSchema } from "moleculer";
import type { Config } from "../config/index.ts";
import { TELEMETRY_TOPIC_FILTER, checkBinding, deviceIdFromTopic, parseTelemetry } from "../models/telemetry.schema.ts";
import {
	call, Customers, DeadLetters, DeviceEvents, Devices, IngestMqtt, isRetryable, type DeadLetterCode, type HandleResult, type MqttDeadLetterPayload,
	type MqttOutcome
} from "../models/contract/index.ts";
import { contractError } from "../runtime/contract-error.ts";

export const DEAD_LETTER_SOURCE = "mqtt";
export const REPROCESS_ACTION = IngestMqtt.reprocess.name;
/** The most of a payload a dead letter keeps: enough to see what was sent, bounded against a flood of junk. */
const DEAD_LETTER_PAYLOAD_BYTES = 64 * 1024;
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5_000;
const WARN_EVERY_MS = 10_000;
/** Calls are made outside any request context: naming the caller lets the metrics count them as source "mqtt". */
const CALLER = { caller: IngestMqtt.service };
/** Any topic of the telemetry shape, valid device id or not: a bad id is dead-lettered, not ignored. */
const TELEMETRY_TOPIC = /^crm\/devices\/[^/]+\/telemetry$/;

export type Outcome = MqttOutcome;

/** Thrown to whoever waits on a message when the service stops first: the message must stay unacknowledged. */
class StoppingError extends Error {
	override name = "StoppingError";
}

class InvalidReading extends Error {
	override name = "InvalidReading";
}

export function toDeadLetterPayload(topic: string, payload: Uint8Array): MqttDeadLetterPayload {
	const kept = payload.byteLength > DEAD_LETTER_PAYLOAD_BYTES ? payload.subarray(0, DEAD_LETTER_PAYLOAD_BYTES) : payload;
	const out: MqttDeadLetterPayload = { topic };
	try {
		out.payload = new TextDecoder("utf-8", { fatal: true }).decode(kept);
	} catch {
		out.payloadBase64 = Buffer.from(kept).toString("base64");
	}
	if (kept !== payload) out.truncatedFrom = payload.byteLength;
	return out;
}

interface PipelineDeps {
	broker: ServiceBroker;
	logger: Logger;
	config: Config;
}

/**
 * The transport-independent part: parse, check the binding, apply, dead-letter. Messages of one device run one
 * after the other (a promise chain per device) so its readings reach the actor in the order they arrived; retryable
 * failures are retried here with backoff, holding that device's later readings back, until the service stops.
 */
export class TelemetryPipeline {
	private readonly broker: ServiceBroker;
	private readonly logger: Logger;
	private readonly config: Config;
	private readonly chains = new Map<string, Promise<unknown>>();
	private readonly bindings = new Map<string, { customerId: string | null; until: number }>();
	private readonly lastWarn = new Map<string, number>();
	private readonly sleepers = new Set<() => void>();
	private stopping = false;
	/** Messages accepted but not yet settled; the transports bound it. */
	pending = 0;

	constructor(deps: PipelineDeps) {
		this.broker = deps.broker;
		this.logger = deps.logger;
		this.config = deps.config;
	}

	/** Resolves once the message may be acknowledged; rejects (StoppingError) when it must not be. */
	submit(topic: string, payload: Uint8Array): Promise<Outcome> {
		const key = deviceIdFromTopic(topic) ?? `topic:${topic}`;
		const previous = this.chains.get(key) ?? Promise.resolve();
		this.pending++;
		const run = previous.then(() => this.process(topic, payload, true));
		const tail = run.then(() => undefined, () => undefined);
		this.chains.set(key, tail);
		void tail.then(() => {
			this.pending--;
			if (this.chains.get(key) === tail) this.chains.delete(key);
		});
		return run;
	}

	/** Re-processes a dead letter's payload; throws instead of dead-lettering it again. */
	async reprocess(p: MqttDeadLetterPayload): Promise<Outcome> {
		const bytes = p.payloadBase64 !== undefined ? Buffer.from(p.payloadBase64, "base64") : Buffer.from(p.payload ?? "", "utf8");
		try {
			return await this.process(p.topic, bytes, false);
		} catch (err) {
			if (err instanceof InvalidReading) throw contractError("INVALID_TELEMETRY", err.message, { reason: err.message });
			throw err;
		}
	}

	forgetBinding(deviceId: string): void {
		this.bindings.delete(deviceId);
	}

	stop(): void {
		this.stopping = true;
		for (const wake of this.sleepers) wake();
		this.sleepers.clear();
	}

	private async process(topic: string, payload: Uint8Array, deadLetter: boolean): Promise<Outcome> {
		const reject = async (reasonCode: DeadLetterCode, reason: string): Promise<Outcome> => {
			if (!deadLetter) throw new InvalidReading(reason);
			// A redelivery of the same message (its PUBACK was lost) keeps one dead letter.
			const dedupKey = `mqtt/${createHash("sha256").update(topic).update("\n").update(payload).digest("hex")}`;
			await this.retrying("dead letter", () => call(this.broker, DeadLetters.record, {
				source: DEAD_LETTER_SOURCE, reason, reasonCode, payload: toDeadLetterPayload(topic, payload), retryAction: REPROCESS_ACTION, dedupKey
			}, CALLER), true);
			return "dead_lettered";
		};
		const edge = this.config.edge;
		const parsed = parseTelemetry(topic, payload, {
			now: Date.now(), maxFutureMs: edge.telemetry.maxFutureMs, maxPayloadBytes: edge.mqtt.maxPayloadBytes, ranges: edge.telemetry.ranges
		});
		if (!parsed.ok) return reject(parsed.code, parsed.reason);
		const boundTo = await this.retrying("device binding lookup", () => this.boundCustomer(parsed.deviceId), true);
		const unbound = checkBinding(parsed.deviceId, parsed.customerId, boundTo, edge.mqtt.unboundDevices);
		if (unbound !== undefined) return reject(boundTo === null ? "unbound_device" : "binding_mismatch", unbound);
		let result: HandleResult;
		try {
			result = await this.retrying(Customers.handle.name, () => call(this.broker, Customers.handle, { customerId: parsed.customerId, event: parsed.event }, CALLER), false);
		} catch (err) {
			if (err instanceof StoppingError || isRetryable(err)) throw err;
			// Only a client error gets here (the actor refused the event): that is the reading's fault, not ours.
			return reject("rejected", `customers.handle refused the reading: ${(err as Error).message}`);
		}
		return result.applied ? "applied" : "duplicate";
	}

	private async boundCustomer(deviceId: string): Promise<string | null> {
		const cached = this.bindings.get(deviceId);
		const now = Date.now();
		if (cached !== undefined && cached.until > now) return cached.customerId;
		const { customerId } = await call(this.broker, Devices.lookup, { deviceId }, CALLER);
		this.bindings.set(deviceId, { customerId, until: now + this.config.edge.mqtt.bindingCacheMs });
		if (this.bindings.size > 100_000) this.bindings.delete(this.bindings.keys().next().value as string);
		return customerId;
	}

	/**
	 * Runs `fn` until it succeeds. Retryable errors (and, with `always`, every error: a dead letter or a binding
	 * we cannot read must not be skipped) are retried with exponential backoff; others are thrown.
	 */
	private async retrying<T>(what: string, fn: () => Promise<T>, always: boolean): Promise<T> {
		for (let attempt = 0; ; attempt++) {
			if (this.stopping) throw new StoppingError(`${what}: ingest-mqtt is stopping`);
			try {
				return await fn();
			} catch (err) {
				if (!always && !isRetryable(err)) throw err;
				this.warnThrottled(what, `mqtt: ${what} failed (attempt ${attempt + 1}), retrying: ${(err as Error).message}`);
				await this.sleep(Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** attempt));
			}
		}
	}

	private sleep(ms: number): Promise<void> {
		if (this.stopping) return Promise.resolve();
		return new Promise(resolve => {
			const wake = () => {
				clearTimeout(timer);
				this.sleepers.delete(wake);
				resolve();
			};
			const timer = setTimeout(wake, ms);
			this.sleepers.add(wake);
		});
	}

	warnThrottled(key: string, message: string): void {
		const now = Date.now();
		if ((this.lastWarn.get(key) ?? 0) + WARN_EVERY_MS > now) return;
		this.lastWarn.set(key, now);
		this.logger.warn(message);
	}
}

type IngestMqttService = Service & {
	pipeline: TelemetryPipeline;
	client: MqttClient | null;
	/** True while the external broker has granted our subscription. */
	subscribed: boolean;
	aedes: Aedes | null;
	server: Server | null;
	startClient(url: string): Promise<void>;
	startEmbedded(port: number): Promise<void>;
};

/** The puback mqtt.js would send; private in its typings, so reached by name. */
type SendPacket = (packet: { cmd: "puback"; messageId: number }, cb?: () => void, cbStorePut?: () => void, noStore?: boolean) => void;

/** What `handleMessage` passes to mqtt.js to stop it sending the PUBACK itself (it then just moves on). */
const DEFER_ACK = new Error("PUBACK deferred until the reading is persisted");

export function createIngestMqttService(config: Config): ServiceSchema {
	const schema = {
		name: IngestMqtt.service,
		actions: {
			reprocess: {
				visibility: "public",
				params: {
					payload: {
						type: "object",
						props: { topic: "string", payload: { type: "string", optional: true }, payloadBase64: { type: "string", optional: true }, truncatedFrom: { type: "number", optional: true } }
					}
				},
				async handler(this: IngestMqttService, ctx: Context<{ payload: MqttDeadLetterPayload }>) {
					if (ctx.params.payload.truncatedFrom !== undefined) throw contractError("INVALID_TELEMETRY", "the dead letter kept only part of the payload; it cannot be re-processed");
					return { outcome: await this.pipeline.reprocess(ctx.params.payload) };
				}
			}
		},
		events: {
			[DeviceEvents.bindingChanged.name](this: IngestMqttService, ctx: Context<{ deviceId: string }>) {
				this.pipeline.forgetBinding(ctx.params.deviceId);
			}
		},
		created(this: IngestMqttService) {
			this.pipeline = new TelemetryPipeline({ broker: this.broker, logger: this.logger, config });
			this.client = null;
			this.subscribed = false;
			this.aedes = null;
			this.server = null;
		},
		async started(this: IngestMqttService) {
			if (config.mqttUrl !== undefined) await this.startClient(config.mqttUrl);
			else if (config.mqttPort !== undefined) await this.startEmbedded(config.mqttPort);
			else this.logger.warn("MQTT ingest is OFF: neither MQTT_URL (external broker) nor MQTT_PORT (embedded broker) is set");
		},
		async stopped(this: IngestMqttService) {
			this.pipeline.stop();
			const client = this.client;
			this.client = null;
			if (client !== null) await client.endAsync(true);
			const server = this.server;
			this.server = null;
			if (server !== null) await new Promise<void>(resolve => server.close(() => resolve()));
			const aedes = this.aedes;
			this.aedes = null;
			if (aedes !== null) await new Promise<void>(resolve => aedes.close(() => resolve()));
		},
		methods: {
			/**
			 * External broker. mqtt.js sends a QoS 1 PUBACK as soon as `handleMessage` calls back (and
			 * `customHandleAcks` only exists for MQTT 5 and holds every later packet until it answers). So
			 * `handleMessage` hands the reading on and calls back with an error, which makes mqtt.js skip its PUBACK
			 * and read the next packet; the PUBACK is sent here once the reading is persisted or dead-lettered, and
			 * only on the connection it came in on (a PUBACK on a newer connection could ack something else; the
			 * broker redelivers instead, and the actor sees a duplicate).
			 */
			async startClient(this: IngestMqttService, url: string) {
				const mq = config.edge.mqtt;
				if (mq.clientId === undefined && config.nodeId === undefined) {
					this.logger.warn("MQTT: NODE_ID is not set, so this node's MQTT session id changes at every restart; readings the old session held unacknowledged wait at the broker until it expires. Set NODE_ID (or MQTT_CLIENT_ID).");
				}
				const clientId = mq.clientId ?? `crm-ingest-${config.nodeId ?? `${hostname()}-${process.pid}`}`;
				const topic = mq.shareGroup === undefined ? TELEMETRY_TOPIC_FILTER : `$share/${mq.shareGroup}/${TELEMETRY_TOPIC_FILTER}`;
				const options: IClientOptions = {
					clientId,
					clean: false,
					protocolVersion: mq.protocolVersion,
					reconnectPeriod: 1000,
					connectTimeout: 10_000,
					resubscribe: false,
					username: mq.username,
					password: mq.password,
					...(mq.protocolVersion === 5 ? { properties: { sessionExpiryInterval: mq.sessionExpiryS, receiveMaximum: mq.maxInflight } } : {})
				};
				const client = mqtt.connect(url, options);
				this.client = client;
				const sendPacket = (client as unknown as { _sendPacket: SendPacket })._sendPacket.bind(client);
				const waiting: Array<() => void> = [];
				client.handleMessage = (packet, callback) => {
					const publish = packet as IPublishPacket;
					const stream = client.stream;
					const done = this.pipeline.submit(publish.topic, publish.payload as Buffer);
					done.then(() => {
						if (publish.qos > 0 && publish.messageId !== undefined && client.connected && client.stream === stream) {
							sendPacket({ cmd: "puback", messageId: publish.messageId }, undefined, undefined, true);
						}
					}, (err: unknown) => {
						if (!(err instanceof StoppingError)) this.logger.error(`MQTT: reading on ${publish.topic} failed and stays unacknowledged:`, err);
					}).finally(() => waiting.shift()?.());
					const proceed = () => callback(publish.qos > 0 ? DEFER_ACK : undefined);
					// Backpressure for MQTT 3.1.1, which cannot tell the broker our Receive Maximum.
					if (this.pipeline.pending > mq.maxInflight) waiting.push(proceed);
					else proceed();
				};
				client.on("connect", connack => {
					this.logger.info(`MQTT: connected to ${url} as ${clientId} (session ${connack.sessionPresent ? "resumed" : "new"}), subscribing to ${topic}`);
					client.subscribe(topic, { qos: 1 }, (err, granted) => {
						if (err) this.logger.error(`MQTT: subscribing to ${topic} failed:`, err);
						else if (granted?.some(g => g.qos !== 1)) this.logger.error(`MQTT: the broker refused ${topic} at QoS 1 (granted ${JSON.stringify(granted)})`);
						else this.subscribed = true;
					});
				});
				client.on("close", () => {
					this.subscribed = false;
				});
				// While the broker is away every reconnect attempt fails: say so every 10 s, not every second.
				client.on("error", err => this.pipeline.warnThrottled("mqtt-error", `MQTT: ${err.message}`));
				client.on("offline", () => this.logger.warn(`MQTT: connection to ${url} lost; reconnecting`));
			},

			/**
			 * Embedded broker (aedes speaks MQTT 3.1.1 only; one node, so no shared subscription). aedes answers a
			 * QoS 1 PUBLISH right after `authorizePublish`, and keeps messages in memory: so the reading is ingested
			 * inside `authorizePublish`, and the device's PUBACK goes out only once it is persisted. A reading we
			 * cannot finish (the node stops) fails authorization, which closes the device's connection unacknowledged:
			 * it publishes again after reconnecting.
			 */
			async startEmbedded(this: IngestMqttService, port: number) {
				const mq = config.edge.mqtt;
				const aedes = await Aedes.createBroker({
					id: `crm-${this.broker.nodeID}`,
					authenticate: (_client: AedesClient, username: Readonly<string | undefined>, password: Readonly<Buffer | undefined>, done) => {
						if (mq.username === undefined) return done(null, true);
						done(null, username === mq.username && password !== undefined && password.toString("utf8") === mq.password);
					},
					authorizePublish: (client: AedesClient | null, packet: PublishPacket, done: (err?: Error | null) => void) => {
						// Other topics (device status, commands) are not ours to judge.
						if (client === null || !TELEMETRY_TOPIC.test(packet.topic)) return done(null);
						const result = this.pipeline.submit(packet.topic, packet.payload as Buffer);
						if (packet.qos === 0) {
							result.catch(() => undefined);
							return done(null);
						}
						result.then(() => done(null), (err: unknown) => done(err instanceof Error ? err : new Error(String(err))));
					}
				});
				aedes.on("clientError", (client, err) => this.logger.debug(`MQTT (embedded): client ${client?.id}: ${err.message}`));
				this.aedes = aedes;
				const server = createServer(aedes.handle);
				this.server = server;
				await new Promise<void>((resolve, reject) => {
					server.once("error", reject);
					server.listen(port, mq.host, () => {
						server.off("error", reject);
						resolve();
					});
				});
				const address = server.address();
				const bound = address !== null && typeof address === "object" ? address.port : port;
				this.logger.info(`MQTT: embedded broker (aedes) listening on ${mq.host}:${bound}${mq.username === undefined ? " without authentication" : ""}; ingesting ${TELEMETRY_TOPIC_FILTER}`);
			}
		}
	};
	return schema as unknown as ServiceSchema;
}
