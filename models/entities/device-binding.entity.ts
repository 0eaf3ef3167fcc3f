// Which customer an MQTT device speaks for (service `devices`).

export interface DeviceBinding {
	deviceId: string;
	customerId: string;
	boundAt: string;
}
