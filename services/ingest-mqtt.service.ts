// ingest-mqtt: device telemetry over MQTT (ARCHITECTURE §9) → `crm.device.telemetry` → customers.handle. A reading
// is acknowledged (QoS 1 PUBACK) only once its actor persisted it, or once it is dead-lettered with the reason. The
// pipeline is edge/telemetry.pipeline.ts; the MQTT session (external broker or embedded) edge/mqtt.session.ts.
import type { Aedes } from "aedes";
import type { Context, ServiceSchema } from "moleculer";
import type { MqttClient } from "mqtt";
import type { Config } from "../config/index.ts";
import { DeviceEvents, IngestMqtt, type MqttDeadLetterPayload } from "../models/contract/index.ts";
import { TelemetryPipeline } from "../edge/telemetry.pipeline.ts";
import { connectMqttClient, startEmbeddedBroker, type EmbeddedBroker } from "../edge/mqtt.session.ts";
import { SourceMixin, type SourceSchema, type SourceService, type SourceModule } from "../mixins/source.mixin.ts";
import { contractError } from "../runtime/contract-error.ts";

interface MqttVars {
	pipeline: TelemetryPipeline;
	/** The external broker's client, when MQTT_URL is set. */
	client: MqttClient | null;
	/** True while the external broker has granted our subscription. */
	subscribed: boolean;
	/** The embedded broker, when MQTT_PORT is set instead. */
	aedes: Aedes | null;
	embedded: EmbeddedBroker | null;
}
type MqttService = SourceService & MqttVars;

export function createIngestMqttService(config: Config): ServiceSchema {
	const schema: SourceSchema<MqttVars> = {
		name: IngestMqtt.service,
		mixins: [SourceMixin({ source: "mqtt", caller: IngestMqtt.service, retryAction: IngestMqtt.reprocess, config })],
		actions: {
			reprocess: {
				visibility: "public",
				params: {
					payload: {
						type: "object",
						props: { topic: "string", payload: { type: "string", optional: true }, payloadBase64: { type: "string", optional: true }, truncatedFrom: { type: "number", optional: true } }
					}
				},
				async handler(this: MqttService, ctx: Context<{ payload: MqttDeadLetterPayload }>) {
					if (ctx.params.payload.truncatedFrom !== undefined) throw contractError("INVALID_TELEMETRY", "the dead letter kept only part of the payload; it cannot be re-processed");
					return { outcome: await this.pipeline.reprocess(ctx.params.payload) };
				}
			}
		},
		events: {
			[DeviceEvents.bindingChanged.name](this: MqttService, ctx: Context<{ deviceId: string }>) {
				this.pipeline.forgetBinding(ctx.params.deviceId);
			}
		},
		created(this: MqttService) {
			this.pipeline = new TelemetryPipeline({ sink: this.sink, broker: this.broker, logger: this.logger, edge: config.edge });
			this.client = null;
			this.subscribed = false;
			this.aedes = null;
			this.embedded = null;
		},
		async started(this: MqttService) {
			const deps = { pipeline: this.pipeline, config, logger: this.logger };
			if (config.mqttUrl !== undefined) {
				this.client = connectMqttClient(config.mqttUrl, { ...deps, onSubscribed: subscribed => (this.subscribed = subscribed) });
			} else if (config.mqttPort !== undefined) {
				this.embedded = await startEmbeddedBroker(config.mqttPort, `crm-${this.broker.nodeID}`, deps);
				this.aedes = this.embedded.aedes;
			} else {
				this.logger.warn("MQTT ingest is OFF: neither MQTT_URL (external broker) nor MQTT_PORT (embedded broker) is set");
			}
		},
		async stopped(this: MqttService) {
			this.pipeline.stop();
			const client = this.client;
			this.client = null;
			if (client !== null) await client.endAsync(true);
			const embedded = this.embedded;
			this.embedded = null;
			this.aedes = null;
			await embedded?.close();
		}
	};
	return schema as unknown as ServiceSchema;
}

export const source: SourceModule = { createService: createIngestMqttService };
