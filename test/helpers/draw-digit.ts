import sharp from 'sharp';

/**
 * An MNIST-style PNG of a printed digit: DejaVu Sans drawn from SVG text, flattened on
 * white, inverted to white-on-black, trimmed, fitted in a 20x20 box centred in 28x28.
 */
export async function drawDigit(digit: number): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"><rect width="100" height="100" fill="white"/><text x="50" y="80" font-family="DejaVu Sans" font-size="80" text-anchor="middle" fill="black">${digit}</text></svg>`;
  const trimmed = await sharp(Buffer.from(svg)).flatten({ background: '#ffffff' }).grayscale().negate({ alpha: false }).trim().toBuffer();
  const black = { r: 0, g: 0, b: 0 };
  return sharp(trimmed)
    .resize(20, 20, { fit: 'contain', background: black })
    .extend({ top: 4, bottom: 4, left: 4, right: 4, background: black })
    .png()
    .toBuffer();
}

/** Digits the shared mnist.onnx classifies right when drawn by drawDigit (2, 6, 8 and 9 are font-sensitive). */
export const RELIABLE_DIGITS = [0, 1, 3, 4, 5, 7];
