public enum RunnerCLIPlaceholder {}
