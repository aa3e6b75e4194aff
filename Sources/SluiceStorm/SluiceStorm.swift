// The load injector behind `sluice storm`. See the README's "The storm" section.
