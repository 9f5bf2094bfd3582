"""``python -m benchmarks SUITE [options]``; suites: models, data, overhead, scaling, gpu; and report."""
import sys

SUITES = {"models": "benchmarks.models", "data": "benchmarks.data_loading", "overhead": "benchmarks.overhead",
          "scaling": "benchmarks.scaling", "gpu": "benchmarks.gpu", "report": "benchmarks.report",
          "denormal": "benchmarks.denormal", "e2e": "benchmarks.e2e"}

SUITES["stochastic_depth"] = "benchmarks.stochastic_depth"  # issue 15: Huang et al.'s batch-mode speed-up


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in SUITES:
        print(f"usage: python -m benchmarks {{{'|'.join(SUITES)}}} [options]  (--help after the suite)",
              file=sys.stderr)
        return 2
    import importlib

    return importlib.import_module(SUITES[sys.argv[1]]).main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
