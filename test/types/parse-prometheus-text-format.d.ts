// The package ships JavaScript only; this covers the one function it exports, as its README and
// its parser describe the result. Values stay strings, as in the exposition text.
declare module 'parse-prometheus-text-format' {
  namespace parsePrometheusTextFormat {
    /** One sample, or for a histogram or summary the samples of one label set merged. */
    interface Sample {
      labels?: Record<string, string>;
      /** Absent on a histogram's or a summary's merged sample. */
      value?: string;
      timestamp_ms?: string;
      /** A histogram's `_bucket` samples by `le`. */
      buckets?: Record<string, string>;
      /** A summary's samples by `quantile`. */
      quantiles?: Record<string, string>;
      count?: string;
      sum?: string;
    }

    /** The samples of one metric name, with its `# HELP` and `# TYPE`. */
    interface MetricFamily {
      name: string;
      /** '' when the text has no `# HELP` line for it. */
      help: string;
      /** The `# TYPE` in upper case (`COUNTER`, `GAUGE`…), `UNTYPED` when there is none. */
      type: string;
      metrics: Sample[];
    }
  }

  /** Parses Prometheus text exposition format into one entry per metric family. */
  function parsePrometheusTextFormat(text: string): parsePrometheusTextFormat.MetricFamily[];

  export = parsePrometheusTextFormat;
}
