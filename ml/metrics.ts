// Evaluation metrics for a binary probabilistic classifier: ranking (ROC AUC, PR AUC), calibration (Brier, log loss)
// and the confusion matrix at a decision threshold.

export interface Confusion {
	tp: number;
	fp: number;
	tn: number;
	fn: number;
}

export interface Metrics {
	n: number;
	positives: number;
	rocAuc: number;
	prAuc: number;
	brier: number;
	logLoss: number;
	threshold: number;
	confusion: Confusion;
	precision: number;
	recall: number;
	f1: number;
	accuracy: number;
}

function checkInputs(scores: ArrayLike<number>, labels: ArrayLike<number>): void {
	if (scores.length !== labels.length) throw new Error(`metrics: ${scores.length} scores but ${labels.length} labels`);
}

/** Indices ordered by descending score (stable, so equal scores keep input order). */
function descending(scores: ArrayLike<number>): number[] {
	return Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b);
}

/** ROC AUC as the Mann–Whitney statistic with average ranks for ties; NaN without both classes. */
export function rocAuc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
	checkInputs(scores, labels);
	const order = descending(scores).reverse();
	let positives = 0;
	let rankSum = 0;
	for (let i = 0; i < order.length;) {
		let j = i;
		while (j + 1 < order.length && scores[order[j + 1]] === scores[order[i]]) j++;
		const avgRank = (i + j) / 2 + 1;
		for (let k = i; k <= j; k++) {
			if (labels[order[k]] === 1) {
				positives++;
				rankSum += avgRank;
			}
		}
		i = j + 1;
	}
	const negatives = order.length - positives;
	if (positives === 0 || negatives === 0) return NaN;
	return (rankSum - positives * (positives + 1) / 2) / (positives * negatives);
}

/** PR AUC as average precision: Σ (Rₙ − Rₙ₋₁) · Pₙ over distinct thresholds (tied scores form one step). */
export function averagePrecision(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
	checkInputs(scores, labels);
	let positives = 0;
	for (let i = 0; i < labels.length; i++) if (labels[i] === 1) positives++;
	if (positives === 0) return NaN;
	const order = descending(scores);
	let tp = 0;
	let fp = 0;
	let prevRecall = 0;
	let ap = 0;
	for (let i = 0; i < order.length;) {
		let j = i;
		while (j < order.length && scores[order[j]] === scores[order[i]]) {
			if (labels[order[j]] === 1) tp++;
			else fp++;
			j++;
		}
		const recall = tp / positives;
		ap += (recall - prevRecall) * (tp / (tp + fp));
		prevRecall = recall;
		i = j;
	}
	return ap;
}

export function brierScore(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
	checkInputs(scores, labels);
	let sum = 0;
	for (let i = 0; i < scores.length; i++) sum += (scores[i] - labels[i]) ** 2;
	return sum / scores.length;
}

/** Mean negative log-likelihood, with probabilities clipped to [1e-15, 1 − 1e-15] so one confident miss is finite. */
export function logLoss(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
	checkInputs(scores, labels);
	const eps = 1e-15;
	let sum = 0;
	for (let i = 0; i < scores.length; i++) {
		const p = Math.min(1 - eps, Math.max(eps, scores[i]));
		sum -= labels[i] === 1 ? Math.log(p) : Math.log(1 - p);
	}
	return sum / scores.length;
}

/** Counts at a threshold: a score ≥ threshold is predicted positive. */
export function confusionAt(scores: ArrayLike<number>, labels: ArrayLike<number>, threshold: number): Confusion {
	checkInputs(scores, labels);
	const c: Confusion = { tp: 0, fp: 0, tn: 0, fn: 0 };
	for (let i = 0; i < scores.length; i++) {
		const predicted = scores[i] >= threshold;
		if (labels[i] === 1) {
			if (predicted) c.tp++;
			else c.fn++;
		} else if (predicted) c.fp++;
		else c.tn++;
	}
	return c;
}

/** The threshold (one of the scores) with the highest F1; the highest such threshold on ties. */
export function maxF1Threshold(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
	checkInputs(scores, labels);
	if (scores.length === 0) throw new Error("maxF1Threshold: no scores");
	let positives = 0;
	for (let i = 0; i < labels.length; i++) if (labels[i] === 1) positives++;
	const order = descending(scores);
	let tp = 0;
	let fp = 0;
	let best = -1;
	let bestThreshold = scores[order[0]];
	for (let i = 0; i < order.length;) {
		let j = i;
		while (j < order.length && scores[order[j]] === scores[order[i]]) {
			if (labels[order[j]] === 1) tp++;
			else fp++;
			j++;
		}
		const f1 = (2 * tp) / (tp + fp + positives);
		if (f1 > best) {
			best = f1;
			bestThreshold = scores[order[i]];
		}
		i = j;
	}
	return bestThreshold;
}

function ratio(a: number, b: number): number {
	return b === 0 ? 0 : a / b;
}

export function evaluate(scores: ArrayLike<number>, labels: ArrayLike<number>, threshold: number): Metrics {
	const confusion = confusionAt(scores, labels, threshold);
	const { tp, fp, tn, fn } = confusion;
	return {
		n: scores.length,
		positives: tp + fn,
		rocAuc: rocAuc(scores, labels),
		prAuc: averagePrecision(scores, labels),
		brier: brierScore(scores, labels),
		logLoss: logLoss(scores, labels),
		threshold,
		confusion,
		precision: ratio(tp, tp + fp),
		recall: ratio(tp, tp + fn),
		f1: ratio(2 * tp, 2 * tp + fp + fn),
		accuracy: ratio(tp + tn, scores.length)
	};
}

/** A few lines for a terminal. */
export function formatMetrics(title: string, m: Metrics): string {
	const f = (v: number): string => v.toFixed(4);
	const c = m.confusion;
	return [
		`${title}: n=${m.n} positives=${m.positives} (${(100 * m.positives / m.n).toFixed(1)} %)`,
		`  ROC AUC ${f(m.rocAuc)}   PR AUC ${f(m.prAuc)}   Brier ${f(m.brier)}   log loss ${f(m.logLoss)}`,
		`  at threshold ${m.threshold.toFixed(4)}: precision ${f(m.precision)} recall ${f(m.recall)} F1 ${f(m.f1)} accuracy ${f(m.accuracy)}`,
		"  confusion        predicted churn   predicted stay",
		`    actual churn   ${String(c.tp).padStart(15)}   ${String(c.fn).padStart(14)}`,
		`    actual stay    ${String(c.fp).padStart(15)}   ${String(c.tn).padStart(14)}`
	].join("\n");
}
