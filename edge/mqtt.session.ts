// The two MQTT sessions ingest-mqtt can run, each handing every telemetry reading to the pipeline and acknowledging
// it (QoS 1 PUBACK) only once the pipeline has settled it: a client of an external broker, or an embedded broker.
import { createServer, type Server } from "node:net";
import { hostname } from "node:os";
import mqtt from "mqtt";
import type { IClientOptions, IPublishPacket, MqttClient } from "mqtt";
import { Aedes } from "aedes";
import type { Client as AedesClient, PublishPacket } from "aedes";
import type { Logger } from "moleculer";
import type { Config } from "../config/index.ts";
import { TELEMETRY_TOPIC_FILTER } from "../models/telemetry.schema.ts";
import { StoppingError, type TelemetryPipeline } from "./telemetry.pipeline.ts";

/** Any topic of the telemetry shape, valid device id or not: a bad id is dead-lettered, not ignored. */
const TELEMETRY_TOPIC = /^crm\/devices\/[^/]+\/telemetry$/;

/** The puback mqtt.js would send; private in its typings, so reached by name. */
type SendPacket = (packet: { cmd: "puback"; messageId: number }, cb?: () => void, cbStorePut?: () => void, noStore?: boolean) => void;

/** What `handleMessage` passes to mqtt.js to stop it sending the PUBACK itself (it then just moves on). */
const DEFER_ACK = new Error("PUBACK deferred until the reading is persisted");

interface SessionDeps {
	pipeline: TelemetryPipeline;
	config: Config;
	logger: Logger;
}

/**
 * External broker. mqtt.js sends a QoS 1 PUBACK as soon as `handleMessage` calls back (and `customHandleAcks` only
 * exists for MQTT 5 and holds every later packet until it answers). So `handleMessage` hands the reading on and
 * calls back with an error, which makes mqtt.js skip its PUBACK and read the next packet; the PUBACK is sent here
 * once the reading is persisted or dead-lettered, and only on the connection it came in on (a PUBACK on a newer
 * connection could ack something else; the broker redelivers instead, and the actor sees a duplicate).
 */
export function connectMqttClient(url: string, deps: SessionDeps & { onSubscribed(subscribed: boolean): void }): MqttClient {
	const { pipeline, config, logger } = deps;
	const mq = config.edge.mqtt;
	if (mq.clientId === undefined && config.nodeId === undefined) {
		logger.warn("MQTT: NODE_ID is not set, so this node's MQTT session id changes at every restart; readings the old session held unacknowledged wait at the broker until it expires. Set NODE_ID (or MQTT_CLIENT_ID).");
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
	const sendPacket = (client as unknown as { _sendPacket: SendPacket })._sendPacket.bind(client);
	const waiting: Array<() => void> = [];
	client.handleMessage = (packet, callback) => {
		const publish = packet as IPublishPacket;
		const stream = client.stream;
		const done = pipeline.submit(publish.topic, publish.payload as Buffer);
		done.then(() => {
			if (publish.qos > 0 && publish.messageId !== undefined && client.connected && client.stream === stream) {
				sendPacket({ cmd: "puback", messageId: publish.messageId }, undefined, undefined, true);
			}
		}, (err: unknown) => {
			if (!(err instanceof StoppingError)) logger.error(`MQTT: reading on ${publish.topic} failed and stays unacknowledged:`, err);
		}).finally(() => waiting.shift()?.());
		const proceed = () => callback(publish.qos > 0 ? DEFER_ACK : undefined);
		// Backpressure for MQTT 3.1.1, which cannot tell the broker our Receive Maximum.
		if (pipeline.pending > mq.maxInflight) waiting.push(proceed);
		else proceed();
	};
	client.on("connect", connack => {
		logger.info(`MQTT: connected to ${url} as ${clientId} (session ${connack.sessionPresent ? "resumed" : "new"}), subscribing to ${topic}`);
		client.subscribe(topic, { qos: 1 }, (err, granted) => {
			if (err) logger.error(`MQTT: subscribing to ${topic} failed:`, err);
			else if (granted?.some(g => g.qos !== 1)) logger.error(`MQTT: the broker refused ${topic} at QoS 1 (granted ${JSON.stringify(granted)})`);
			else deps.onSubscribed(true);
		});
	});
	client.on("close", () => deps.onSubscribed(false));
	// While the broker is away every reconnect attempt fails: say so every 10 s, not every second.
	client.on("error", err => pipeline.warnThrottled("mqtt-error", `MQTT: ${err.message}`));
	client.on("offline", () => logger.warn(`MQTT: connection to ${url} lost; reconnecting`));
	return client;
}

export interface EmbeddedBroker {
	aedes: Aedes;
	server: Server;
	close(): Promise<void>;
}

/**
 * Embedded broker (aedes speaks MQTT 3.1.1 only; one node, so no shared subscription). aedes answers a QoS 1
 * PUBLISH right after `authorizePublish`, and keeps messages in memory: so the reading is ingested inside
 * `authorizePublish`, and the device's PUBACK goes out only once it is persisted. A reading we cannot finish (the
 * node stops) fails authorization, which closes the device's connection unacknowledged: it publishes again after
 * reconnecting.
 */
export async function startEmbeddedBroker(port: number, id: string, deps: SessionDeps): Promise<EmbeddedBroker> {
	const { pipeline, config, logger } = deps;
	const mq = config.edge.mqtt;
	const aedes = await Aedes.createBroker({
		id,
		authenticate: (_client: AedesClient, username: Readonly<string | undefined>, password: Readonly<Buffer | undefined>, done) => {
			if (mq.username === undefined) return done(null, true);
			done(null, username === mq.username && password !== undefined && password.toString("utf8") === mq.password);
		},
		authorizePublish: (client: AedesClient | null, packet: PublishPacket, done: (err?: Error | null) => void) => {
			// Other topics (device status, commands) are not ours to judge.
			if (client === null || !TELEMETRY_TOPIC.test(packet.topic)) return done(null);
			const result = pipeline.submit(packet.topic, packet.payload as Buffer);
			if (packet.qos === 0) {
				result.catch(() => undefined);
				return done(null);
			}
			result.then(() => done(null), (err: unknown) => done(err instanceof Error ? err : new Error(String(err))));
		}
	});
	aedes.on("clientError", (client, err) => logger.debug(`MQTT (embedded): client ${client?.id}: ${err.message}`));
	const server = createServer(aedes.handle);
	// Stop listening first (no new device gets in), then close aedes, which ends every device's connection: the
	// server's close callback waits for those, so awaiting it before aedes.close() hangs whenever a device is still
	// connected (e.g. one that reconnected while the node was stopping).
	const close = async () => {
		const closed = new Promise<void>(resolve => server.close(() => resolve()));
		await new Promise<void>(resolve => aedes.close(() => resolve()));
		await closed;
	};
	try {
		await new Promise<void>((resolve, reject) => {
			server.once("error", reject);
			server.listen(port, mq.host, () => {
				server.off("error", reject);
				resolve();
			});
		});
	} catch (err) {
		await new Promise<void>(resolve => aedes.close(() => resolve()));
		throw err;
	}
	const address = server.address();
	const bound = address !== null && typeof address === "object" ? address.port : port;
	logger.info(`MQTT: embedded broker (aedes) listening on ${mq.host}:${bound}${mq.username === undefined ? " without authentication" : ""}; ingesting ${TELEMETRY_TOPIC_FILTER}`);
	return { aedes, server, close };
}
