// Prometheus exposition of the crm_* metrics: Moleculer's reporter with histograms written completely.
import { MetricReporters } from "moleculer";

interface HistogramItem { labels: Record<string, unknown>; count: number; sum: number; buckets?: Record<string, number> }

/**
 * Moleculer's Prometheus reporter writes a histogram's `_sum` and `_count` only when quantiles are on (and then
 * adds summary-style quantile lines that do not belong in a histogram), and orders integer bucket bounds first.
 * This one keeps quantiles off and writes every histogram as Prometheus expects: buckets by `le`, then `_sum` and
 * `_count`, so `rate(x_sum)/rate(x_count)` and `histogram_quantile` both work.
 */
export class PrometheusReporter extends MetricReporters.Prometheus {
	override generatePrometheusResponse(): string {
		let text = super.generatePrometheusResponse();
		const self = this as unknown as {
			registry: { store: Map<string, { name: string; type: string; quantiles?: unknown; snapshot(): HistogramItem[] }> };
			matchMetricName(name: string): boolean;
			formatMetricName(name: string): string;
		};
		for (const metric of self.registry.store.values()) {
			if (metric.type !== "histogram" || metric.quantiles || !self.matchMetricName(metric.name)) continue;
			const name = self.formatMetricName(metric.name).replace(/[.-]/g, "_");
			for (const item of metric.snapshot()) {
				const buckets = item.buckets;
				if (!buckets) continue;
				const line = (le: string) => `${name}_bucket${this.labelsToStr(item.labels, { le })} ${buckets[le] ?? "NaN"}`;
				const inf = `${name}_bucket${this.labelsToStr(item.labels, { le: "+Inf" })} ${item.count}`;
				const written = [...Object.keys(buckets).map(line), inf].join("\n");
				const fixed = [
					...Object.keys(buckets).sort((a, b) => Number(a) - Number(b)).map(line), inf,
					`${name}_sum${this.labelsToStr(item.labels)} ${item.sum}`,
					`${name}_count${this.labelsToStr(item.labels)} ${item.count}`
				].join("\n");
				text = text.replace(written, () => fixed);
			}
		}
		return text;
	}
}
