export const shimVersion = "0.1.0";
